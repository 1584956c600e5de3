// Updating an instance's VM in place: planUpdate (pure) turns the VM as read (VmView)
// and what the update wants (VmChanges) into one ReconfigVM_Task spec, the reasons a
// power cycle is needed and the root disk's growth; applyUpdate carries it out with
// the fewest calls: a hot CPU + memory change is one ReconfigVM_Task and its task.
//
// The hot rules are vCenter's (it refuses the rest with InvalidPowerState): while the
// VM runs, CPUs may only be added and only with cpuHotAdd, memory only grow and only
// with memoryHotAdd, coresPerSocket never changes; NICs of the three models we make
// can be added, removed and moved. A root disk grows in the same reconfigure (vCenter
// extends the file), except a linked clone's: a disk with a parent cannot be extended
// ("Disks with parents cannot be expanded"), so, as Nova's vmops._resize_disk, it is
// copied while the VM is off (the copy is one disk holding the whole chain), the copy
// extended and swapped in for the delta, and the delta deleted: the VM then no longer
// depends on the cached base.
//
// Re-running after a failure is safe: the plan is made again from a fresh read, a
// leftover copy from an earlier try is replaced by the new copy, and the delta is
// deleted only once the reconfigure has attached its replacement.
import type { VimClient } from "./client.js";
import { copyVirtualDisk, DatastorePath, deleteVirtualDisk, extendVirtualDisk } from "./datastore.js";
import { FileAlreadyExistsFault, VSphereError } from "./errors.js";
import type { Datacenter } from "./inventory.js";
import type { MoRef } from "./soap/xml.js";
import { runTaskReading } from "./task.js";
import { readVmSpec, vmViewIn } from "./vm-read.js";
import { setPowerState, type PowerState } from "./vm-lifecycle.js";
import { METADATA_PREFIX, NIC_DEVICE_TYPES, NIC_MODELS, nicChange, type AllocationOptions, type NicModel, type NicOptions } from "./vm-spec.js";
import type { AllocationView, NicBackingView, VmDiskView, VmChanges, VmNicView, VmView } from "./vm-view.js";

/** The update asks for something vCenter cannot do; `field` names the option. */
export class VmUpdateError extends VSphereError {
  readonly code = "InvalidVmUpdate";
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

type Obj = Record<string, unknown>;

/**
 * The root disk's growth:
 * - extend: a disk without parents, grown by the reconfigure's `edit` (in `spec`);
 * - consolidate: a linked clone's delta, copied to `resized` (the chain in one disk),
 *   extended, and swapped in by the reconfigure (the delta's device removed, the copy
 *   added at the same controller and unit); the delta is deleted after. The disk is
 *   no longer a linked clone.
 */
export type DiskGrowth =
  | { kind: "extend"; key: number; fileName: string; fromKb: number; toKb: number }
  | { kind: "consolidate"; key: number; fileName: string; parents: string[]; resized: string; fromKb: number; toKb: number };

export interface UpdatePlan {
  vm: MoRef;
  /** The one ReconfigVM_Task's spec; undefined when nothing needs reconfiguring. */
  spec: Obj | undefined;
  /** What changes, one line each ("cpus 2 → 4"), for previews and logs. */
  changes: string[];
  /**
   * Why the VM must be powered off for the reconfigure and on again after ("cpus 2 → 4:
   * CPU hot add is off"); empty when the change is done live or the VM is off.
   */
  powerCycle: string[];
  /** Power off before the reconfigure: a power cycle, or a VM that is to end off. */
  powerOffFirst: boolean;
  disk: DiskGrowth | undefined;
  powerState: { from: PowerState; to: PowerState };
}

export interface UpdateResult {
  powerState: PowerState;
  /** The root disk after a growth: a consolidated linked clone is a disk of its own now. */
  rootDisk?: { fileName: string; capacityKb: number; linkedClone: boolean };
  /**
   * The VM as updated, when the reconfigure was the last step and its end was read
   * together with the VM (one round trip); else the caller reads it.
   */
  view?: VmView;
}

// Temporary keys of the devices a reconfigure adds (vCenter gives real ones).
const NEW_NIC_KEY = -300;
const NEW_DISK_KEY = -400;

const gb = (kb: number) => `${Number((kb / 2 ** 20).toFixed(2))}`;

/** The root disk: the instance's one disk (the lowest key, should there be more). */
function rootDiskOf(view: VmView): VmDiskView | undefined {
  return [...view.disks].sort((a, b) => a.key - b.key)[0];
}

/** The plan of an update; throws VmUpdateError for what cannot be done at all (a disk shrink, ...). */
export function planUpdate(view: VmView, want: VmChanges): UpdatePlan {
  const from = view.powerState;
  const to = want.powerState ?? from;
  const live = from !== "poweredOff";
  const spec: Obj = {};
  const changes: string[] = [];
  const needsOff: string[] = [];
  const hot = (change: string, refused: string | undefined) => {
    if (!live) return;
    if (from === "suspended") needsOff.push(`${change}: the VM is suspended`);
    else if (refused) needsOff.push(`${change}: ${refused}`);
  };

  // CPU and memory.
  const cpus = want.cpus ?? view.cpus;
  const cores = want.coresPerSocket ?? view.coresPerSocket;
  if (want.cpus !== undefined || want.coresPerSocket !== undefined) {
    if (!Number.isInteger(cpus) || cpus < 1) throw new VmUpdateError("cpus", `must be a positive integer, got ${cpus}`);
    if (!Number.isInteger(cores) || cores < 1 || cpus % cores !== 0) {
      throw new VmUpdateError("coresPerSocket", `${cores} does not divide cpus (${cpus}): give a coresPerSocket that does`);
    }
  }
  if (cpus !== view.cpus) {
    const c = `cpus ${view.cpus} → ${cpus}`;
    spec.numCPUs = cpus;
    changes.push(c);
    hot(c, cpus < view.cpus ? "CPUs cannot be removed while powered on" : view.cpuHotAdd ? undefined : "CPU hot add is off");
  }
  if (cores !== view.coresPerSocket) {
    const c = `coresPerSocket ${view.coresPerSocket} → ${cores}`;
    spec.numCoresPerSocket = cores;
    changes.push(c);
    hot(c, "coresPerSocket changes only while powered off");
  }
  if (want.memoryMb !== undefined && want.memoryMb !== view.memoryMb) {
    if (!Number.isInteger(want.memoryMb) || want.memoryMb < 4) throw new VmUpdateError("memoryMb", `must be an integer of at least 4, got ${want.memoryMb}`);
    const c = `memoryMb ${view.memoryMb} → ${want.memoryMb}`;
    spec.memoryMB = want.memoryMb;
    changes.push(c);
    hot(c, memoryRefused(view, want.memoryMb));
  }
  for (const [field, specField, have, wanted] of [
    ["cpuHotAdd", "cpuHotAddEnabled", view.cpuHotAdd, want.cpuHotAdd],
    ["memoryHotAdd", "memoryHotAddEnabled", view.memoryHotAdd, want.memoryHotAdd],
  ] as const) {
    if (wanted !== undefined && wanted !== have) {
      const c = `${field} ${have} → ${wanted}`;
      spec[specField] = wanted;
      changes.push(c);
      hot(c, `${field} changes only while powered off`);
    }
  }
  for (const [field, have, wanted] of [
    ["cpuAllocation", view.cpuAllocation, want.cpuAllocation],
    ["memoryAllocation", view.memoryAllocation, want.memoryAllocation],
  ] as const) {
    const a = allocationChange(have, wanted);
    if (a) {
      spec[field] = a;
      changes.push(`${field} ${Object.keys(a).join(", ")}`);
    }
  }

  // Annotation and metadata (extraConfig: a key set to "" is removed by vCenter).
  if (want.annotation !== undefined && want.annotation !== view.annotation) {
    spec.annotation = want.annotation;
    changes.push("annotation");
  }
  if (want.metadata) {
    const extraConfig: Array<{ key: string; value: string }> = [];
    for (const [k, v] of Object.entries(want.metadata)) {
      if (v === "") throw new VmUpdateError(`metadata.${k}`, "is empty: vCenter removes an extraConfig key set to an empty value; leave the key out instead");
      if (view.metadata[k] !== v) extraConfig.push({ key: METADATA_PREFIX + k, value: v });
    }
    for (const k of Object.keys(view.metadata)) if (!(k in want.metadata)) extraConfig.push({ key: METADATA_PREFIX + k, value: "" });
    if (extraConfig.length) {
      spec.extraConfig = extraConfig;
      changes.push(`metadata ${extraConfig.map((e) => (e.value === "" ? `-${e.key.slice(METADATA_PREFIX.length)}` : e.key.slice(METADATA_PREFIX.length))).join(", ")}`);
    }
  }

  // NICs, matched by position; then the root disk.
  const deviceChange: Obj[] = [];
  if (want.nics) planNics(view, want.nics, deviceChange, changes, hot);
  const disk = planDisk(view, want.rootDiskKb, deviceChange, changes, hot);
  if (deviceChange.length) spec.deviceChange = deviceChange;

  if (to !== from) changes.push(`powerState ${from} → ${to}`);
  const reconfigure = Object.keys(spec).length > 0;
  // A VM that is to end off is powered off first: the change needs no hot rule then.
  const powerOffFirst = live && reconfigure && (needsOff.length > 0 || to === "poweredOff");
  return {
    vm: view.vm,
    spec: reconfigure ? spec : undefined,
    changes,
    powerCycle: powerOffFirst && to !== "poweredOff" ? needsOff : [],
    powerOffFirst,
    disk,
    powerState: { from, to },
  };
}

/** Linux guests take memory hot-added past this only from a VM that had more (VMware KB 2008405). */
const LINUX_HOT_ADD_BOUNDARY_MB = 3072;

/**
 * Why a running VM cannot take `mb` of memory live, or undefined when it can. The 3 GB
 * rule of Linux guests (hot-add from 3 GB or less to more is refused, KB 2008405 and
 * terraform-provider-vsphere#1352) is applied to every guest but Windows: at worst a
 * power cycle that was not needed.
 */
function memoryRefused(view: VmView, mb: number): string | undefined {
  if (mb < view.memoryMb) return "memory cannot shrink while powered on";
  if (!view.memoryHotAdd) return "memory hot add is off";
  if (!/^win/i.test(view.guestId) && view.memoryMb <= LINUX_HOT_ADD_BOUNDARY_MB && mb > LINUX_HOT_ADD_BOUNDARY_MB) {
    return `memory hot add cannot cross ${LINUX_HOT_ADD_BOUNDARY_MB} MB on this guest`;
  }
  return undefined;
}

/** The ResourceAllocationInfo fields that change; undefined when none does. */
function allocationChange(have: AllocationView, want: AllocationOptions | undefined): Obj | undefined {
  if (!want) return undefined;
  const out: Obj = {};
  if (want.reservation !== undefined && want.reservation !== have.reservation) out.reservation = want.reservation;
  if (want.limit !== undefined && want.limit !== have.limit) out.limit = want.limit;
  if (want.shares) {
    const count = want.shares.level === "custom" ? want.shares.count : 0;
    if (want.shares.level !== have.shares.level || (want.shares.level === "custom" && count !== have.shares.count)) {
      // SharesInfo.shares is required; vCenter reads it only for the custom level.
      out.shares = { shares: count, level: want.shares.level };
    }
  }
  return Object.keys(out).length ? out : undefined;
}

function sameBacking(have: NicBackingView, want: NicOptions["backing"]): boolean {
  if (want.kind === "standard") return have.kind === "standard" && have.networkName === want.networkName;
  return have.kind === "distributed" && have.switchUuid === want.switchUuid && have.portgroupKey === want.portgroupKey;
}

const backingName = (b: NicBackingView | NicOptions["backing"]) =>
  b.kind === "standard" ? b.networkName : b.kind === "distributed" ? `${b.switchUuid}/${b.portgroupKey}` : b.type;

type Hot = (change: string, refused: string | undefined) => void;

/**
 * NIC i of the wish against NIC i of the VM (by key, the order vCenter made them in):
 * another model is the old card removed and a new one added (its MAC kept when it was
 * fixed by hand); another port group or MAC is an edit; extra NICs are added or removed.
 */
function planNics(view: VmView, wanted: readonly NicOptions[], deviceChange: Obj[], changes: string[], hot: Hot): void {
  const have = [...view.nics].sort((a, b) => a.key - b.key);
  const hotPluggable = (n: VmNicView) => (NIC_MODELS as readonly string[]).includes(n.model);
  const refusedFor = (n: VmNicView) => (hotPluggable(n) ? undefined : `a ${n.model} card is changed only while powered off`);
  for (let i = 0; i < Math.max(have.length, wanted.length); i++) {
    const h = have[i];
    const w = wanted[i];
    if (w) {
      const model = w.model ?? "vmxnet3";
      if (!(NIC_MODELS as readonly string[]).includes(model)) throw new VmUpdateError(`nics[${i}].model`, `${JSON.stringify(model)} is not one of ${NIC_MODELS.join(", ")}`);
    }
    if (h && !w) {
      const c = `nics[${i}] removed (${backingName(h.backing)})`;
      deviceChange.push({ operation: "remove", device: h.device });
      changes.push(c);
      hot(c, refusedFor(h));
      continue;
    }
    if (!w) continue;
    const model: NicModel = w.model ?? "vmxnet3";
    if (!h) {
      const c = `nics[${i}] added (${model} on ${backingName(w.backing)})`;
      deviceChange.push(nicChange(w, { type: NIC_DEVICE_TYPES[model], key: NEW_NIC_KEY - i }));
      changes.push(c);
      hot(c, undefined);
      continue;
    }
    if (h.model !== model) {
      const mac = w.macAddress ?? (h.addressType === "manual" ? h.macAddress : undefined);
      const c = `nics[${i}] model ${h.model} → ${model}`;
      const added = nicChange({ ...w, ...(mac !== undefined ? { macAddress: mac } : {}) }, { type: NIC_DEVICE_TYPES[model], key: NEW_NIC_KEY - i });
      deviceChange.push({ operation: "remove", device: h.device });
      // The new card takes the old one's slot (its PCI controller and unit), so the guest
      // finds it where the old card was.
      deviceChange.push({ ...added, device: { ...(added.device as Obj), ...slotOf(h.device) } });
      changes.push(c);
      hot(c, refusedFor(h));
      continue;
    }
    const edit: Obj = {};
    const what: string[] = [];
    if (!sameBacking(h.backing, w.backing)) {
      edit.backing = (nicChange(w, { type: NIC_DEVICE_TYPES[model], key: h.key }).device as Obj).backing;
      what.push(`${backingName(h.backing)} → ${backingName(w.backing)}`);
    }
    if (w.macAddress !== undefined && w.macAddress.toLowerCase() !== h.macAddress?.toLowerCase()) {
      Object.assign(edit, { addressType: "manual", macAddress: w.macAddress.toLowerCase() });
      what.push(`MAC ${h.macAddress ?? "none"} → ${w.macAddress.toLowerCase()}`);
    }
    if (w.startConnected !== undefined && h.startConnected !== undefined && w.startConnected !== h.startConnected) {
      const connectable = (h.device as Obj).connectable;
      edit.connectable = { ...(typeof connectable === "object" && connectable !== null ? connectable : {}), startConnected: w.startConnected };
      what.push(`startConnected ${w.startConnected}`);
    }
    if (what.length) {
      const c = `nics[${i}] ${what.join(", ")}`;
      deviceChange.push({ operation: "edit", device: { ...(h.device as Obj), ...edit } });
      changes.push(c);
      hot(c, refusedFor(h));
    }
  }
}

/** A device's controllerKey and unitNumber as read, those it has. */
function slotOf(device: unknown): Obj {
  const d = (typeof device === "object" && device !== null ? device : {}) as Obj;
  return {
    ...(d.controllerKey !== undefined ? { controllerKey: d.controllerKey } : {}),
    ...(d.unitNumber !== undefined ? { unitNumber: d.unitNumber } : {}),
  };
}

/** The root disk's growth: an edit of a disk without parents, a consolidation of a linked clone's. */
function planDisk(view: VmView, wantKb: number | undefined, deviceChange: Obj[], changes: string[], hot: Hot): DiskGrowth | undefined {
  const root = rootDiskOf(view);
  if (wantKb === undefined) return undefined;
  if (!root) throw new VmUpdateError("rootDiskGb", "the VM has no disk to grow");
  if (wantKb === root.capacityKb) return undefined;
  if (!Number.isInteger(wantKb) || wantKb < root.capacityKb) {
    throw new VmUpdateError("rootDiskGb", `${gb(wantKb)} is smaller than the disk's ${gb(root.capacityKb)} GB: a disk can only grow`);
  }
  const c = `rootDiskGb ${gb(root.capacityKb)} → ${gb(wantKb)}`;
  changes.push(c);
  if (root.parents.length === 0) {
    deviceChange.push({ operation: "edit", device: { ...(root.device as Obj), capacityInKB: wantKb, capacityInBytes: wantKb * 1024 } });
    // The vSphere Client offers no hot extend of an IDE disk; SCSI disks grow live.
    hot(c, root.controllerType === "VirtualIDEController" ? "an IDE disk grows only while powered off" : undefined);
    return { kind: "extend", key: root.key, fileName: root.fileName, fromKb: root.capacityKb, toKb: wantKb };
  }
  const resized = resizedPath(view, root);
  deviceChange.push({ operation: "remove", device: root.device });
  deviceChange.push({
    operation: "add",
    device: {
      $type: "VirtualDisk",
      key: NEW_DISK_KEY,
      backing: { $type: "VirtualDiskFlatVer2BackingInfo", fileName: resized, diskMode: "persistent" },
      controllerKey: root.controllerKey,
      unitNumber: root.unitNumber,
      capacityInKB: wantKb,
    },
  });
  hot(c, "growth of a linked clone: its disk is copied into one and grown while powered off");
  return { kind: "consolidate", key: root.key, fileName: root.fileName, parents: root.parents, resized, fromKb: root.capacityKb, toKb: wantKb };
}

/** `<disk's folder>/resized.vmdk` (Nova's name), or another name should a disk of the VM have it. */
function resizedPath(view: VmView, root: VmDiskView): string {
  const folder = DatastorePath.parse(root.fileName).parent;
  const used = new Set(view.disks.flatMap((d) => [d.fileName, ...d.parents]));
  for (let n = 0; ; n++) {
    const p = folder.join(n === 0 ? "resized.vmdk" : `resized-${n}.vmdk`).toString();
    if (!used.has(p)) return p;
  }
}

/**
 * Copies the delta (and so its chain) to `resized`. A copy there is one an earlier try
 * left (the plan chose a name no disk of the VM has, so it is not attached): it is
 * deleted and the copy made again. The first try costs nothing extra.
 */
async function copyConsolidated(client: VimClient, datacenter: Datacenter, delta: string, resized: string): Promise<void> {
  try {
    await copyVirtualDisk(client, datacenter, delta, resized);
  } catch (err) {
    if (!(err instanceof FileAlreadyExistsFault)) throw err;
    await deleteVirtualDisk(client, datacenter, resized);
    await copyVirtualDisk(client, datacenter, delta, resized);
  }
}

/**
 * Carries out a plan made from `view`: power off when needed (a hard power off), the
 * linked clone's copy and extension, one ReconfigVM_Task, the delta's deletion, then
 * the wanted power state (else the one before). When a step fails after the power
 * off, the VM is brought back to its state before (best effort) and the error thrown.
 */
export async function applyUpdate(client: VimClient, datacenter: Datacenter | undefined, view: VmView, plan: UpdatePlan): Promise<UpdateResult> {
  const vm = plan.vm;
  // Only a consolidation's datastore file calls need the datacenter (callers look it up for that alone).
  if (plan.disk?.kind === "consolidate" && !datacenter) throw new VmUpdateError("rootDiskGb", `growing the linked clone of ${vm.value} needs its datacenter, which was not found`);
  let state = view.powerState;
  if (plan.powerOffFirst) state = await setPowerState(client, vm, state, "poweredOff");
  const disk = plan.disk;
  let after: VmView | undefined;
  try {
    if (disk?.kind === "consolidate") {
      await copyConsolidated(client, datacenter!, disk.fileName, disk.resized);
      await extendVirtualDisk(client, datacenter!, disk.resized, disk.toKb);
    }
    if (plan.spec) {
      // The last step (no delta to delete, no power change after): its end is read together
      // with the VM as it is now, when the task is done at the first look.
      const last = disk?.kind !== "consolidate" && plan.powerState.to === state;
      const done = await runTaskReading(client, "ReconfigVM_Task", vm, { spec: plan.spec }, last ? [readVmSpec(vm)] : []);
      if (done.reads) after = vmViewIn(vm, done.reads);
    }
  } catch (err) {
    if (state !== view.powerState) {
      await setPowerState(client, vm, state, view.powerState).catch((again: unknown) => {
        client.log({ level: "warn", event: "cleanup", message: `VM ${vm.value}: could not bring it back to ${view.powerState} after a failed update: ${(again as Error).message}` });
      });
    }
    throw err;
  }
  if (disk?.kind === "consolidate") {
    // The delta is detached now; its parents (the cached base) are not touched (Nova
    // deletes a resized linked clone's old delta the same way). A failure leaves only
    // files in the VM's folder, which the VM's removal deletes.
    await deleteVirtualDisk(client, datacenter!, disk.fileName).catch((err: unknown) => {
      client.log({ level: "warn", event: "cleanup", message: `VM ${vm.value}: could not delete the old delta ${disk.fileName}: ${(err as Error).message}` });
    });
  }
  if (plan.powerState.to !== state) state = await setPowerState(client, vm, state, plan.powerState.to);
  return {
    powerState: state,
    ...(disk ? { rootDisk: { fileName: disk.kind === "consolidate" ? disk.resized : disk.fileName, capacityKb: disk.toKb, linkedClone: false } } : {}),
    ...(after ? { view: after } : {}),
  };
}
