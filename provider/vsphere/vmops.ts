// Spawning an instance's VM, as Nova's vmops.spawn does and in fewer calls: the host
// (where DRS does not place), a VNC port free on the cluster's hosts, one CreateVM_Task
// carrying every device (vm-spec.ts), the VNC port read back and moved on a collision
// with a VM another creator made at the same moment (Nova's lock is in-process only),
// then power on. A failure at any step after the create removes the VM (vm-lifecycle.ts:
// its folder with its delta disk; the cached base is never touched).
import type { VimClient } from "./client.js";
import { hostFor } from "./host-select.js";
import type { Cluster } from "./inventory.js";
import { moRef } from "./schema.js";
import type { MoRef } from "./soap/xml.js";
import { runTask, runTaskReading } from "./task.js";
import { removeVm, setPowerState } from "./vm-lifecycle.js";
import { readVm, readVmSpec, resolveVmId, vmViewIn } from "./vm-read.js";
import type { VmView } from "./vm-view.js";
import { buildVmConfigSpec, matchDevices, plannedDevices, type VmSpecOptions } from "./vm-spec.js";
import { VNC_PORT_KEY, pickVncPort, portsTakenOn, vncPortsInUse, vncScanSpec, vncUsesIn, type VncUse } from "./vnc.js";

export interface SpawnOptions {
  cluster: Cluster;
  /** Default: the cluster's root resource pool. */
  resourcePool?: MoRef;
  /** Default: the datacenter's VM folder. */
  folder?: MoRef;
  /** Everything of the VM but its VNC port, which is chosen here. */
  spec: Omit<VmSpecOptions, "vnc">;
  /** Give the VM a VNC console (default true). */
  vnc?: boolean | { keyMap?: string };
  powerOn?: boolean;
  /** Suspend it after the power on (an instance whose wanted state is suspended). */
  suspend?: boolean;
  /**
   * Every VM's VNC port as read moments before, beside another read (vnc.ts vncScanSpec,
   * e.g. with the datastore choice): the port is picked from it without a read of its own.
   * The check after the create reads them again either way.
   */
  vncUses?: VncUse[] | undefined;
}

export interface SpawnedVm {
  vm: MoRef;
  /** The host it runs on, or was placed on. */
  host: MoRef | undefined;
  vncPort: number | undefined;
  /** The devices by role (controller, disk, nic0, ...) and the keys vCenter gave them. */
  devices: Record<string, number>;
  /** The VM as vCenter has it now (vm-read.ts). */
  view: VmView;
}

/** Tries at moving a VNC port that another new VM took at the same moment. */
const VNC_TRIES = 10;

// Ports this process is handing out now: concurrent spawns in one process never pick alike.
const reserved = new WeakMap<VimClient, Set<number>>();

/** Creates, checks the VNC port, powers on; removes the VM again if any step fails. */
export async function spawnVm(client: VimClient, opts: SpawnOptions): Promise<SpawnedVm> {
  const { cluster } = opts;
  const dc = cluster.datacenter;
  const host = await hostFor(client, cluster);
  const wantVnc = opts.vnc !== false;
  const keyMap = typeof opts.vnc === "object" ? opts.vnc.keyMap : undefined;
  let mine = reserved.get(client);
  if (!mine) reserved.set(client, (mine = new Set()));
  const held = mine;

  let port: number | undefined;
  if (wantVnc) {
    const taken = portsTakenOn(opts.vncUses ?? (await vncPortsInUse(client)), cluster.hosts);
    port = pickVncPort([...taken, ...held], opts.spec.name);
    held.add(port);
  }
  try {
    const spec = buildVmConfigSpec({ ...opts.spec, ...(port !== undefined ? { vnc: { port, ...(keyMap ? { keyMap } : {}) } } : {}) });
    // An answer lost after the request went out (a connection cut) leaves the VM made or
    // not: its instance uuid says which, so it is neither left behind unknown nor made twice.
    const uuid = opts.spec.instanceUuid;
    const checkApplied = async () => {
      const found = await resolveVmId(client, dc, uuid!);
      return found ? { applied: true as const, value: found } : { applied: false as const };
    };
    // The create's end and every VM's VNC port in one read, when the task is done at once:
    // the port's collision check needs the VM to exist, and then it does.
    const created = await runTaskReading(
      client,
      "CreateVM_Task",
      opts.folder ?? dc.vmFolder,
      { config: spec, pool: opts.resourcePool ?? cluster.resourcePool, ...(host ? { host } : {}) },
      port !== undefined ? [vncScanSpec(client)] : [],
      uuid !== undefined ? { checkApplied } : {},
    );
    const vm = moRef.parse(created.value);
    try {
      if (port !== undefined) port = await settleVncPort(client, vm, port, cluster, opts.spec.name, held, created.reads && vncUsesIn(created.reads));
      // One read of everything the caller keeps (devices, host, the MACs vCenter generated),
      // in the same call as the power-on's end when it is done at once.
      let view: VmView | undefined;
      if ((opts.powerOn ?? true) && !opts.suspend) {
        const on = await runTaskReading(client, "PowerOnVM_Task", vm, {}, [readVmSpec(vm)]);
        view = on.reads ? vmViewIn(vm, on.reads) : undefined;
      } else if (opts.powerOn ?? true) {
        await setPowerState(client, vm, "poweredOff", "suspended");
      }
      view ??= await readVm(client, vm);
      if (!view) throw new Error(`VM ${vm.value} disappeared right after its create`);
      return { vm, host: view.host ?? host, vncPort: port, devices: devicesOf(opts.spec, view), view };
    } catch (err) {
      await removeVm(client, dc, vm).catch((cleanup: unknown) => {
        client.log({ level: "warn", event: "cleanup", message: `could not remove VM ${vm.value} after a failed create: ${(cleanup as Error).message}` });
      });
      throw err;
    }
  } finally {
    if (port !== undefined) held.delete(port);
  }
}

/**
 * Reads the ports back now that the VM exists: another creator (another process) may have
 * picked the same port at the same moment. Then this VM moves to a port free now, and
 * looks again; both may move, and they part within a few tries.
 */
async function settleVncPort(
  client: VimClient,
  vm: MoRef,
  port: number,
  cluster: Cluster,
  seed: string,
  held: Set<number>,
  /** The ports as read together with the create's end, when they were. */
  first?: VncUse[],
): Promise<number> {
  let current = port;
  for (let attempt = 0; attempt < VNC_TRIES; attempt++) {
    const uses = attempt === 0 && first ? first : await vncPortsInUse(client);
    const others = uses.filter((u) => !u.vm.equals(vm));
    const taken = portsTakenOn(others, cluster.hosts);
    if (!taken.includes(current)) return current;
    const next = pickVncPort([...taken, ...held, current], `${seed}#${attempt}`);
    held.add(next);
    held.delete(current);
    await runTask(client, "ReconfigVM_Task", vm, { spec: { extraConfig: [{ key: VNC_PORT_KEY, value: String(next) }] } });
    current = next;
  }
  throw new Error(`VNC port of ${vm.value}: still colliding after ${VNC_TRIES} moves (another process keeps taking the same ports)`);
}

/** The planned devices found in the VM as read: role -> the key vCenter gave. */
function devicesOf(spec: Omit<VmSpecOptions, "vnc">, view: VmView): Record<string, number> {
  const read = [
    ...view.controllers.map((c) => ({ $type: c.type, key: c.key, busNumber: c.busNumber })),
    ...view.disks.map((d) => d.device),
    ...view.nics.map((n) => n.device),
    ...view.serialPorts.map((p) => ({ $type: "VirtualSerialPort", key: p.key })),
  ];
  const found = Object.fromEntries(matchDevices(plannedDevices(spec), read));
  // The CD-ROM: the one with the ISO on it.
  const cdrom = spec.cdromIso !== undefined ? view.cdroms.find((c) => c.iso !== undefined) : undefined;
  if (cdrom) found.cdrom = cdrom.key;
  return found;
}
