// The VirtualMachineConfigSpec of an instance, built whole so that one CreateVM_Task
// makes the VM with every device it can carry (as Nova's vm_util builds its create
// spec, then does more in later reconfigures; we do it in one): the disk controller
// of the image's adapter type, the root disk (a linked clone's delta on the cached
// base, a full copy already placed, or a blank disk beside an ISO on a CD-ROM), the
// NICs, a URI-backed serial port and the extraConfig (metadata, VNC, console delay).
//
// Pure: no vCenter is touched. Objects carry `$type` and vim25 field names; the SOAP
// writer puts them in schema order. Devices get negative temporary keys (vCenter
// gives real ones); plannedDevices / matchDevices find them again in a read-back of
// config.hardware.device by what vCenter keeps: type, controller and unit, order.
import { DatastorePath, type PathLike } from "./datastore.js";
import { VSphereError } from "./errors.js";
import { arrayOf, dataObject, int, str } from "./schema.js";
import type { MoRef } from "./soap/xml.js";
import { ADAPTER_TYPES, type AdapterType } from "./vmdk.js";
import { VNC_ENABLED_KEY, VNC_PORTS, VNC_PORT_KEY } from "./vnc.js";

/** The input is contradictory or out of range; `field` names the option. */
export class VmSpecError extends VSphereError {
  readonly code = "InvalidVmSpec";
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

// ---------------------------------------------------------------------------
// Options

export const NIC_MODELS = ["vmxnet3", "e1000", "e1000e"] as const;
export type NicModel = (typeof NIC_MODELS)[number];

/** vim25 device type of each NIC model (Nova's convert_vif_model). */
export const NIC_DEVICE_TYPES: Readonly<Record<NicModel, string>> = {
  vmxnet3: "VirtualVmxnet3",
  e1000: "VirtualE1000",
  e1000e: "VirtualE1000e",
};

/** The controller a disk of each adapter type sits on (vim25 type name). */
export const DISK_CONTROLLER_TYPES: Readonly<Record<AdapterType, string>> = {
  ide: "VirtualIDEController",
  busLogic: "VirtualBusLogicController",
  lsiLogic: "VirtualLsiLogicController",
  lsiLogicsas: "VirtualLsiLogicSASController",
  paraVirtual: "ParaVirtualSCSIController",
};

/** A standard port group: vCenter finds it by name; `network` is its Network object. */
export interface StandardNicBacking {
  kind: "standard";
  networkName: string;
  network?: MoRef;
}
/** A distributed port group, by its switch's uuid and its key. */
export interface DistributedNicBacking {
  kind: "distributed";
  switchUuid: string;
  portgroupKey: string;
}

export interface NicOptions {
  backing: StandardNicBacking | DistributedNicBacking;
  /** Default vmxnet3. */
  model?: NicModel;
  /** A fixed MAC ("manual"); absent, vCenter generates one. */
  macAddress?: string;
  /** Default true, as Nova. */
  startConnected?: boolean;
  /** Default true, as Nova. */
  allowGuestControl?: boolean;
  /** Default true, as Nova. */
  wakeOnLan?: boolean;
}

export type SharesLevel = "low" | "normal" | "high";
/** CPU (MHz) or memory (MB) reservation, limit and shares; absent fields stay vCenter's defaults. */
export interface AllocationOptions {
  reservation?: number;
  /** -1 is unlimited. */
  limit?: number;
  shares?: { level: SharesLevel } | { level: "custom"; count: number };
}

/**
 * The root disk:
 * - linkedClone: a child (delta) disk made by the create, whose parent is the cached
 *   (sized) base; `capacityKb` is the base's size.
 * - copy: a disk already in place (the base copied into the VM's folder and grown).
 * - blank: a new thin disk of `capacityKb` (an ISO image's root disk).
 */
export type RootDiskOptions =
  | { kind: "linkedClone"; base: PathLike; capacityKb: number }
  | { kind: "copy"; fileName: PathLike; capacityKb?: number }
  | { kind: "blank"; capacityKb: number };

export interface VmSpecOptions {
  /** The VM's name, also its folder's and its disk's: `[ds] <name>/<name>.vmdk`. */
  name: string;
  /** The datastore of the VM's files (vCenter makes the folder). */
  datastore: string;
  guestId: string;
  numCpus: number;
  coresPerSocket?: number;
  memoryMb: number;
  /** CPU and memory hot add, set at create so a later resize can skip the power cycle (default off, vCenter's). */
  cpuHotAdd?: boolean;
  memoryHotAdd?: boolean;
  cpuAllocation?: AllocationOptions;
  memoryAllocation?: AllocationOptions;
  instanceUuid?: string;
  annotation?: string;
  adapterType: AdapterType;
  rootDisk: RootDiskOptions;
  /** An ISO on a CD-ROM (the cached `.iso`), beside the root disk. */
  cdromIso?: PathLike;
  nics?: NicOptions[];
  /** A URI-backed serial port, as Nova's serial_port_service_uri / serial_port_proxy_uri. */
  serialPort?: { serviceUri: string; proxyUri?: string };
  vnc?: { port: number; keyMap?: string };
  /** Nova's console_delay_seconds: the guest's keyboard key-repeat delay, > 0 to apply. */
  consoleDelaySeconds?: number;
  /** User metadata, each key written as `METADATA_PREFIX + key`. */
  metadata?: Readonly<Record<string, string>>;
  /** Raw extraConfig entries, written as given (after metadata, before VNC). */
  extraConfig?: Readonly<Record<string, string>>;
  /** A storage policy's id (pbm.ts findPolicy): set on the VM (its home) and on the root disk. */
  storagePolicyId?: string;
}

// ---------------------------------------------------------------------------
// Constants vCenter and Nova fix

/** Every VM vCenter creates has IDE controllers 200 and 201 (no spec adds them). */
export const IDE_CONTROLLER_KEYS = [200, 201] as const;
/** Nova: extraConfig key of the VNC port; the console's enablement and key map. */
export const VNC_KEYS = { enabled: VNC_ENABLED_KEY, port: VNC_PORT_KEY, keyMap: "RemoteDisplay.vnc.keyMap" } as const;
/** Nova's console_delay_seconds goes to this key, in microseconds. */
export const CONSOLE_DELAY_KEY = "keyboard.typematicMinDelay";
/** Where user metadata lives in extraConfig; not guestinfo.*, which the guest can rewrite. */
export const METADATA_PREFIX = "pulumi.metadata.";
/** The VNC range ESXi opens (the seed: 5900-6105). */
const VNC_RANGE = VNC_PORTS;

// Temporary keys: negative so they never meet a key vCenter gave.
const KEY = { controller: -100, disk: -101, cdrom: -102, serial: -103, firstNic: -110 } as const;

// ---------------------------------------------------------------------------
// The plan: which device goes where

export type DeviceRole = "controller" | "disk" | "cdrom" | "serial" | `nic${number}`;

/** A device the spec adds, and how to find it in a read-back. */
export interface PlannedDevice {
  role: DeviceRole;
  /** vim25 type name. */
  type: string;
  /** The temporary (negative) key in the spec. */
  key: number;
  /** The controller's key: a temporary one for a new controller, 200/201 for IDE. */
  controllerKey?: number;
  unitNumber?: number;
}

function validate(o: VmSpecOptions): void {
  if (o.name === "" || o.name.length > 80) throw new VmSpecError("name", `must be 1-80 characters, got ${JSON.stringify(o.name)}`);
  if (o.datastore === "") throw new VmSpecError("datastore", "is empty");
  if (!(ADAPTER_TYPES as readonly string[]).includes(o.adapterType)) {
    throw new VmSpecError("adapterType", `${JSON.stringify(o.adapterType)} is not one of ${ADAPTER_TYPES.join(", ")}`);
  }
  if (!Number.isInteger(o.numCpus) || o.numCpus < 1) throw new VmSpecError("numCpus", `must be a positive integer, got ${o.numCpus}`);
  if (o.coresPerSocket !== undefined && (!Number.isInteger(o.coresPerSocket) || o.coresPerSocket < 1 || o.numCpus % o.coresPerSocket !== 0)) {
    throw new VmSpecError("coresPerSocket", `must divide numCpus (${o.numCpus}), got ${o.coresPerSocket}`);
  }
  if (!Number.isInteger(o.memoryMb) || o.memoryMb < 4) throw new VmSpecError("memoryMb", `must be an integer of at least 4, got ${o.memoryMb}`);
  const cap = o.rootDisk.capacityKb;
  if (cap !== undefined && (!Number.isInteger(cap) || cap < 1)) throw new VmSpecError("rootDisk.capacityKb", `must be a positive integer, got ${cap}`);
  for (const [i, nic] of (o.nics ?? []).entries()) {
    if (nic.model !== undefined && !(NIC_MODELS as readonly string[]).includes(nic.model)) {
      throw new VmSpecError(`nics[${i}].model`, `${JSON.stringify(nic.model)} is not one of ${NIC_MODELS.join(", ")}`);
    }
    if (nic.macAddress !== undefined && !/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(nic.macAddress)) {
      throw new VmSpecError(`nics[${i}].macAddress`, `${JSON.stringify(nic.macAddress)} is not a MAC address (aa:bb:cc:dd:ee:ff)`);
    }
  }
  if (o.vnc && (!Number.isInteger(o.vnc.port) || o.vnc.port < VNC_RANGE.first || o.vnc.port > VNC_RANGE.last)) {
    throw new VmSpecError("vnc.port", `must be in ${VNC_RANGE.first}-${VNC_RANGE.last}, got ${o.vnc.port}`);
  }
  for (const [field, entries] of [["metadata", o.metadata], ["extraConfig", o.extraConfig]] as const) {
    const owned = Object.keys(entries ?? {}).find((k) => k.startsWith("RemoteDisplay.vnc.") || k === CONSOLE_DELAY_KEY);
    if (owned !== undefined) throw new VmSpecError(field, `${JSON.stringify(owned)} is set by the vnc / consoleDelaySeconds options, not by hand`);
  }
  if (o.consoleDelaySeconds !== undefined && !(o.consoleDelaySeconds >= 0)) {
    throw new VmSpecError("consoleDelaySeconds", `must be 0 or more, got ${o.consoleDelaySeconds}`);
  }
}

/**
 * Every device the spec adds, with its temporary key and its place: an IDE disk on
 * the built-in controller 200 (unit 0); a SCSI disk on a new controller (bus 0) at
 * unit 0 (7 is the controller's own); a CD-ROM on IDE 200, or on 201 when the disk
 * has 200 (each on its own channel); NICs in the order given.
 */
export function plannedDevices(o: VmSpecOptions): PlannedDevice[] {
  const ide = o.adapterType === "ide";
  const out: PlannedDevice[] = [];
  if (!ide) out.push({ role: "controller", type: DISK_CONTROLLER_TYPES[o.adapterType], key: KEY.controller });
  out.push({ role: "disk", type: "VirtualDisk", key: KEY.disk, controllerKey: ide ? IDE_CONTROLLER_KEYS[0] : KEY.controller, unitNumber: 0 });
  if (o.cdromIso !== undefined) {
    out.push({ role: "cdrom", type: "VirtualCdrom", key: KEY.cdrom, controllerKey: ide ? IDE_CONTROLLER_KEYS[1] : IDE_CONTROLLER_KEYS[0], unitNumber: 0 });
  }
  for (const [i, nic] of (o.nics ?? []).entries()) {
    out.push({ role: `nic${i}`, type: NIC_DEVICE_TYPES[nic.model ?? "vmxnet3"], key: KEY.firstNic - i });
  }
  if (o.serialPort) out.push({ role: "serial", type: "VirtualSerialPort", key: KEY.serial });
  return out;
}

// ---------------------------------------------------------------------------
// The spec

type Obj = Record<string, unknown>;

const asPath = (p: PathLike): DatastorePath => (typeof p === "string" ? DatastorePath.parse(p) : p);

function allocation(a: AllocationOptions): Obj {
  return {
    ...(a.reservation !== undefined ? { reservation: a.reservation } : {}),
    ...(a.limit !== undefined ? { limit: a.limit } : {}),
    // SharesInfo.shares is required: vCenter ignores it unless the level is custom.
    ...(a.shares ? { shares: { shares: a.shares.level === "custom" ? a.shares.count : 0, level: a.shares.level } } : {}),
  };
}

/** A storage policy (pbm.ts findPolicy) as a config spec's `vmProfile` entry or a disk's `profile` entry. */
export interface VmProfileSpec {
  $type: "VirtualMachineDefinedProfileSpec";
  profileId: string;
}

export function vmProfileSpec(policyId: string): VmProfileSpec {
  return { $type: "VirtualMachineDefinedProfileSpec", profileId: policyId };
}

const connectable = (startConnected: boolean, allowGuestControl: boolean): Obj => ({ startConnected, allowGuestControl, connected: startConnected });

function diskChange(o: VmSpecOptions, p: PlannedDevice): Obj {
  const own = new DatastorePath(o.datastore, `${o.name}/${o.name}.vmdk`).toString();
  const d = o.rootDisk;
  let backing: Obj;
  let fileOperation: string | undefined = "create";
  if (d.kind === "linkedClone") {
    // The child gets its own file in the VM's folder; vCenter makes it a delta of `parent`.
    backing = { fileName: own, diskMode: "persistent", parent: { $type: "VirtualDiskFlatVer2BackingInfo", fileName: asPath(d.base).toString(), diskMode: "persistent" } };
  } else if (d.kind === "copy") {
    backing = { fileName: asPath(d.fileName).toString(), diskMode: "persistent" };
    fileOperation = undefined;
  } else {
    backing = { fileName: own, diskMode: "persistent", thinProvisioned: true };
  }
  return {
    operation: "add",
    ...(fileOperation ? { fileOperation } : {}),
    device: {
      $type: "VirtualDisk",
      key: p.key,
      backing: { $type: "VirtualDiskFlatVer2BackingInfo", ...backing },
      controllerKey: p.controllerKey,
      unitNumber: p.unitNumber,
      ...(d.capacityKb !== undefined ? { capacityInKB: d.capacityKb } : {}),
    },
    ...(o.storagePolicyId !== undefined ? { profile: [vmProfileSpec(o.storagePolicyId)] } : {}),
  };
}

/** The deviceChange that adds one NIC (also a model change's new card, vm-update.ts). */
export function nicChange(nic: NicOptions, p: Pick<PlannedDevice, "type" | "key">): Obj {
  const b = nic.backing;
  const backing: Obj =
    b.kind === "standard"
      ? { $type: "VirtualEthernetCardNetworkBackingInfo", deviceName: b.networkName, ...(b.network ? { network: b.network } : {}) }
      : { $type: "VirtualEthernetCardDistributedVirtualPortBackingInfo", port: { switchUuid: b.switchUuid, portgroupKey: b.portgroupKey } };
  return {
    operation: "add",
    device: {
      $type: p.type,
      key: p.key,
      backing,
      connectable: connectable(nic.startConnected ?? true, nic.allowGuestControl ?? true),
      ...(nic.macAddress !== undefined ? { addressType: "manual", macAddress: nic.macAddress.toLowerCase() } : { addressType: "generated" }),
      wakeOnLanEnabled: nic.wakeOnLan ?? true,
    },
  };
}

/**
 * Where the VM's files go: `[ds]` lets vCenter make the VM's folder; a full copy's disk is
 * in its folder already, so the .vmx is put beside it (vCenter would otherwise make
 * another folder, `<name>_1`, beside the one that exists).
 */
function vmPathOf(o: VmSpecOptions): string {
  if (o.rootDisk.kind === "copy") {
    const disk = typeof o.rootDisk.fileName === "string" ? DatastorePath.parse(o.rootDisk.fileName) : o.rootDisk.fileName;
    return disk.parent.join(`${o.name}.vmx`).toString();
  }
  return new DatastorePath(o.datastore).toString();
}

/** extraConfig entries in the order written: metadata, raw entries, VNC, console delay. */
export function extraConfigOf(o: Pick<VmSpecOptions, "metadata" | "extraConfig" | "vnc" | "consoleDelaySeconds">): Array<{ key: string; value: string }> {
  const out: Array<{ key: string; value: string }> = [];
  for (const [k, v] of Object.entries(o.metadata ?? {})) out.push({ key: METADATA_PREFIX + k, value: v });
  for (const [k, v] of Object.entries(o.extraConfig ?? {})) out.push({ key: k, value: v });
  if (o.vnc) {
    out.push({ key: VNC_KEYS.enabled, value: "true" }, { key: VNC_KEYS.port, value: String(o.vnc.port) });
    if (o.vnc.keyMap) out.push({ key: VNC_KEYS.keyMap, value: o.vnc.keyMap });
  }
  // Nova writes seconds x 1,000,000: the key-repeat delay is in microseconds.
  if (o.consoleDelaySeconds !== undefined && o.consoleDelaySeconds > 0) {
    out.push({ key: CONSOLE_DELAY_KEY, value: String(Math.round(o.consoleDelaySeconds * 1_000_000)) });
  }
  return out;
}

/** The VirtualMachineConfigSpec for CreateVM_Task; throws VmSpecError on bad options. */
export function buildVmConfigSpec(o: VmSpecOptions): Obj {
  validate(o);
  const plan = plannedDevices(o);
  const nics = o.nics ?? [];
  const deviceChange: Obj[] = [];
  for (const p of plan) {
    if (p.role === "controller") {
      deviceChange.push({ operation: "add", device: { $type: p.type, key: p.key, busNumber: 0, sharedBus: "noSharing" } });
    } else if (p.role === "disk") {
      deviceChange.push(diskChange(o, p));
    } else if (p.role === "cdrom") {
      deviceChange.push({
        operation: "add",
        device: {
          $type: "VirtualCdrom",
          key: p.key,
          backing: { $type: "VirtualCdromIsoBackingInfo", fileName: asPath(o.cdromIso!).toString() },
          connectable: connectable(true, false),
          controllerKey: p.controllerKey,
          unitNumber: p.unitNumber,
        },
      });
    } else if (p.role === "serial") {
      const s = o.serialPort!;
      deviceChange.push({
        operation: "add",
        device: {
          $type: "VirtualSerialPort",
          key: p.key,
          backing: { $type: "VirtualSerialPortURIBackingInfo", serviceURI: s.serviceUri, direction: "server", ...(s.proxyUri ? { proxyURI: s.proxyUri } : {}) },
          connectable: connectable(true, true),
          yieldOnPoll: true,
        },
      });
    } else {
      deviceChange.push(nicChange(nics[Number(p.role.slice(3))]!, p));
    }
  }
  const extraConfig = extraConfigOf(o);
  return {
    name: o.name,
    ...(o.instanceUuid !== undefined ? { instanceUuid: o.instanceUuid } : {}),
    guestId: o.guestId,
    ...(o.annotation !== undefined ? { annotation: o.annotation } : {}),
    files: { vmPathName: vmPathOf(o) },
    numCPUs: o.numCpus,
    ...(o.coresPerSocket !== undefined ? { numCoresPerSocket: o.coresPerSocket } : {}),
    memoryMB: o.memoryMb,
    ...(o.memoryHotAdd !== undefined ? { memoryHotAddEnabled: o.memoryHotAdd } : {}),
    ...(o.cpuHotAdd !== undefined ? { cpuHotAddEnabled: o.cpuHotAdd } : {}),
    deviceChange,
    ...(o.cpuAllocation ? { cpuAllocation: allocation(o.cpuAllocation) } : {}),
    ...(o.memoryAllocation ? { memoryAllocation: allocation(o.memoryAllocation) } : {}),
    ...(extraConfig.length ? { extraConfig } : {}),
    ...(o.storagePolicyId !== undefined ? { vmProfile: [vmProfileSpec(o.storagePolicyId)] } : {}),
  };
}

// ---------------------------------------------------------------------------
// Finding the planned devices in a read-back

const ReadDevice = dataObject({ $type: str.optional(), key: int, controllerKey: int.optional(), unitNumber: int.optional(), busNumber: int.optional() });
const ReadDevices = arrayOf(ReadDevice);

/**
 * The real key vCenter gave each planned device, from `config.hardware.device` as
 * read back: the new controller by type and bus 0; the disk and CD-ROM by their
 * controller and unit; NICs of each type in the order planned (vCenter keeps the
 * deviceChange order in its keys); the serial port by type. A device not found is
 * left out of the map.
 */
export function matchDevices(plan: readonly PlannedDevice[], devices: unknown): Map<DeviceRole, number> {
  const read = ReadDevices.parse(devices ?? []);
  const out = new Map<DeviceRole, number>();
  const taken = new Set<number>();
  const claim = (role: DeviceRole, found: { key: number } | undefined) => {
    if (found) {
      out.set(role, found.key);
      taken.add(found.key);
    }
  };
  const controller = plan.find((p) => p.role === "controller");
  if (controller) claim("controller", read.find((d) => d.$type === controller.type && d.busNumber === 0));
  const realController = (key: number | undefined) => (key !== undefined && key < 0 ? out.get("controller") : key);
  for (const p of plan) {
    if (p.role === "disk" || p.role === "cdrom") {
      const ck = realController(p.controllerKey);
      claim(p.role, read.find((d) => d.$type === p.type && !taken.has(d.key) && d.controllerKey === ck && d.unitNumber === p.unitNumber));
    }
  }
  const byKey = [...read].sort((a, b) => a.key - b.key);
  for (const p of plan) {
    if (p.role.startsWith("nic") || p.role === "serial") claim(p.role, byKey.find((d) => d.$type === p.type && !taken.has(d.key)));
  }
  return out;
}
