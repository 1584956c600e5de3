// Updating a VM in place (vm-update.ts): the plan from literal views (hot rules, NICs by
// position, metadata, disk growth), then against the simulator: CPU / memory hot and with
// a power cycle, NICs added / removed / moved / of another model, metadata and annotation,
// a full disk grown in the one reconfigure, a linked clone consolidated and grown as Nova
// does, a failure half-way leaving the VM bootable, and the harness's vCenter faults.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { VimClient } from "../../provider/vsphere/client.js";
import { DatastorePath, fileExists, listFolder, makeDirectory } from "../../provider/vsphere/datastore.js";
import { VimFault } from "../../provider/vsphere/errors.js";
import { getCluster, getDatacenter, type Cluster, type Datacenter } from "../../provider/vsphere/inventory.js";
import { getDistributedPortGroup, getDistributedSwitch } from "../../provider/vsphere/network.js";
import { PropertyCollector } from "../../provider/vsphere/property.js";
import { cacheLocation } from "../../provider/vsphere/image-cache.js";
import { prepareRootDisk } from "../../provider/vsphere/root-disk.js";
import { MoRef } from "../../provider/vsphere/soap/xml.js";
import { runTask } from "../../provider/vsphere/task.js";
import { readVm } from "../../provider/vsphere/vm-read.js";
import { METADATA_PREFIX, type DistributedNicBacking, type VmSpecOptions } from "../../provider/vsphere/vm-spec.js";
import { applyUpdate, planUpdate, VmUpdateError, type UpdatePlan } from "../../provider/vsphere/vm-update.js";
import type { VmChanges, VmView } from "../../provider/vsphere/vm-view.js";
import { spawnVm } from "../../provider/vsphere/vmops.js";
import { simOptions } from "../support/clients.js";
import { rejection } from "../support/rejection.js";
import { createDisk } from "../support/vms.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";

// ---------------------------------------------------------------------------
// The plan, from literal views

const BASE = "[ds] cache/img/img.vmdk";
const nicDevice = (key: number, type: string) => ({ $type: type, key: String(key), macAddress: "00:50:56:00:00:01", controllerKey: "100", unitNumber: "7" });

function view(over: Partial<VmView> = {}): VmView {
  return {
    vm: new MoRef("VirtualMachine", "vm-1"),
    name: "web",
    instanceUuid: "5012a3b4-c5d6-47e8-89ab-cdef01234567",
    guestId: "ubuntu64Guest",
    annotation: "urn",
    cpus: 2,
    coresPerSocket: 1,
    memoryMb: 2048,
    cpuHotAdd: false,
    memoryHotAdd: false,
    cpuAllocation: { reservation: 0, limit: -1, shares: { level: "normal", count: 2000 } },
    memoryAllocation: { reservation: 0, limit: -1, shares: { level: "normal", count: 20480 } },
    powerState: "poweredOn",
    vmxPath: "[ds] web/web.vmx",
    extraConfig: { [`${METADATA_PREFIX}a`]: "1", [`${METADATA_PREFIX}b`]: "2" },
    metadata: { a: "1", b: "2" },
    vncEnabled: true,
    disks: [
      {
        key: 2000,
        controllerKey: 1000,
        unitNumber: 0,
        controllerType: "VirtualLsiLogicController",
        fileName: "[ds] web/web.vmdk",
        capacityKb: 4096,
        parents: [BASE],
        device: { $type: "VirtualDisk", key: "2000", capacityInKB: "4096" },
      },
    ],
    nics: [
      {
        key: 4000,
        model: "vmxnet3",
        macAddress: "00:50:56:00:00:01",
        addressType: "manual",
        backing: { kind: "standard", networkName: "VM Network" },
        startConnected: true,
        device: nicDevice(4000, "VirtualVmxnet3"),
      },
    ],
    cdroms: [],
    serialPorts: [],
    controllers: [{ key: 1000, type: "VirtualLsiLogicController", busNumber: 0 }],
    ...over,
  };
}

const deviceChange = (p: UpdatePlan) => (p.spec?.deviceChange ?? []) as Array<{ operation: string; device: Record<string, unknown> }>;

describe("planUpdate: CPU and memory", () => {
  it("grows CPUs and memory live when hot add is on: one spec, no power cycle", () => {
    const p = planUpdate(view({ cpuHotAdd: true, memoryHotAdd: true }), { cpus: 4, memoryMb: 3072 });
    expect(p.spec).toEqual({ numCPUs: 4, memoryMB: 3072 });
    expect(p.powerCycle).toEqual([]);
    expect(p.powerOffFirst).toBe(false);
    expect(p.powerState).toEqual({ from: "poweredOn", to: "poweredOn" });
  });

  it("names each reason for a power cycle: hot add off, a shrink, coresPerSocket", () => {
    expect(planUpdate(view(), { cpus: 4 }).powerCycle).toEqual(["cpus 2 → 4: CPU hot add is off"]);
    expect(planUpdate(view({ memoryHotAdd: true }), { memoryMb: 1024 }).powerCycle).toEqual(["memoryMb 2048 → 1024: memory cannot shrink while powered on"]);
    expect(planUpdate(view({ memoryHotAdd: false }), { memoryMb: 4096 }).powerCycle).toEqual(["memoryMb 2048 → 4096: memory hot add is off"]);
    // A Linux guest's hot add cannot cross 3 GB (KB 2008405); a Windows guest's can.
    expect(planUpdate(view({ memoryHotAdd: true }), { memoryMb: 4096 }).powerCycle).toEqual(["memoryMb 2048 → 4096: memory hot add cannot cross 3072 MB on this guest"]);
    expect(planUpdate(view({ memoryHotAdd: true, guestId: "windows9Server64Guest" }), { memoryMb: 4096 }).powerCycle).toEqual([]);
    expect(planUpdate(view({ memoryHotAdd: true, memoryMb: 4096 }), { memoryMb: 8192 }).powerCycle).toEqual([]);
    expect(planUpdate(view({ cpuHotAdd: true }), { cpus: 1 }).powerCycle).toEqual(["cpus 2 → 1: CPUs cannot be removed while powered on"]);
    const cores = planUpdate(view({ cpuHotAdd: true }), { cpus: 4, coresPerSocket: 2 });
    expect(cores.spec).toEqual({ numCPUs: 4, numCoresPerSocket: 2 });
    expect(cores.powerCycle).toEqual(["coresPerSocket 1 → 2: coresPerSocket changes only while powered off"]);
    expect(cores.powerOffFirst).toBe(true);
  });

  it("turns CPU / memory hot add on or off only while powered off", () => {
    const p = planUpdate(view(), { cpuHotAdd: true, memoryHotAdd: false, cpus: 4 });
    expect(p.spec).toEqual({ numCPUs: 4, cpuHotAddEnabled: true });
    expect(p.powerCycle).toEqual(["cpus 2 → 4: CPU hot add is off", "cpuHotAdd false → true: cpuHotAdd changes only while powered off"]);
    expect(planUpdate(view({ powerState: "poweredOff" }), { memoryHotAdd: true }).spec).toEqual({ memoryHotAddEnabled: true });
  });

  it("needs no power cycle for a VM that is off, or that is to end off", () => {
    const off = planUpdate(view({ powerState: "poweredOff" }), { cpus: 1, memoryMb: 1024 });
    expect(off.powerCycle).toEqual([]);
    expect(off.powerOffFirst).toBe(false);
    const ending = planUpdate(view(), { cpus: 1, powerState: "poweredOff" });
    expect(ending.powerCycle).toEqual([]);
    expect(ending.powerOffFirst).toBe(true);
    expect(ending.powerState).toEqual({ from: "poweredOn", to: "poweredOff" });
  });

  it("a suspended VM is powered off for any hardware change, and suspended again after", () => {
    const p = planUpdate(view({ powerState: "suspended", cpuHotAdd: true }), { cpus: 4, annotation: "x" });
    expect(p.powerCycle).toEqual(["cpus 2 → 4: the VM is suspended"]);
    expect(p.powerOffFirst).toBe(true);
    expect(p.powerState).toEqual({ from: "suspended", to: "suspended" });
    expect(planUpdate(view({ powerState: "suspended" }), { annotation: "x" }).powerOffFirst).toBe(false);
  });

  it("refuses a coresPerSocket that does not divide the CPUs", () => {
    const err = (() => {
      try {
        planUpdate(view({ coresPerSocket: 2 }), { cpus: 3 });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(VmUpdateError);
    expect((err as VmUpdateError).field).toBe("coresPerSocket");
  });

  it("sends only the allocation fields that change", () => {
    const p = planUpdate(view(), { cpuAllocation: { reservation: 0, limit: 3000, shares: { level: "normal" } }, memoryAllocation: { shares: { level: "custom", count: 5 } } });
    expect(p.spec).toEqual({ cpuAllocation: { limit: 3000 }, memoryAllocation: { shares: { shares: 5, level: "custom" } } });
    expect(p.powerCycle).toEqual([]);
  });

  it("a power state alone: no reconfigure", () => {
    const p = planUpdate(view(), { powerState: "poweredOff" });
    expect([p.spec, p.powerOffFirst, p.changes]).toEqual([undefined, false, ["powerState poweredOn → poweredOff"]]);
  });

  it("plans nothing when nothing changes", () => {
    const v = view();
    const p = planUpdate(v, { cpus: 2, memoryMb: 2048, metadata: { a: "1", b: "2" }, annotation: "urn", rootDiskKb: 4096, nics: [{ backing: { kind: "standard", networkName: "VM Network" } }] });
    expect(p.spec).toBeUndefined();
    expect(p.changes).toEqual([]);
    expect(p.powerOffFirst).toBe(false);
  });
});

describe("planUpdate: metadata, annotation, NICs", () => {
  it("sets changed metadata keys and empties removed ones (vCenter deletes a key set to \"\")", () => {
    const p = planUpdate(view(), { metadata: { a: "1", b: "3", c: "4" } });
    expect(p.spec).toEqual({ extraConfig: [{ key: `${METADATA_PREFIX}b`, value: "3" }, { key: `${METADATA_PREFIX}c`, value: "4" }] });
    expect(planUpdate(view(), { metadata: {} }).spec).toEqual({ extraConfig: [{ key: `${METADATA_PREFIX}a`, value: "" }, { key: `${METADATA_PREFIX}b`, value: "" }] });
    expect(() => planUpdate(view(), { metadata: { a: "" } })).toThrow(/metadata\.a: is empty/);
    expect(planUpdate(view(), { annotation: "new" }).spec).toEqual({ annotation: "new" });
  });

  it("moves a NIC by editing its backing, live", () => {
    const p = planUpdate(view(), { nics: [{ backing: { kind: "distributed", switchUuid: "u-1", portgroupKey: "dvportgroup-9" } }] });
    expect(deviceChange(p)).toEqual([
      {
        operation: "edit",
        device: { ...nicDevice(4000, "VirtualVmxnet3"), backing: { $type: "VirtualEthernetCardDistributedVirtualPortBackingInfo", port: { switchUuid: "u-1", portgroupKey: "dvportgroup-9" } } },
      },
    ]);
    expect(p.powerCycle).toEqual([]);
  });

  it("changes a model by remove + add, keeping a manual MAC; adds and removes by position", () => {
    const p = planUpdate(view(), {
      nics: [
        { backing: { kind: "standard", networkName: "VM Network" }, model: "e1000e" },
        { backing: { kind: "standard", networkName: "Other" } },
      ],
    });
    const dc = deviceChange(p);
    expect(dc.map((c) => [c.operation, c.device.$type])).toEqual([
      ["remove", "VirtualVmxnet3"],
      ["add", "VirtualE1000e"],
      ["add", "VirtualVmxnet3"],
    ]);
    expect(dc[1]!.device).toMatchObject({ addressType: "manual", macAddress: "00:50:56:00:00:01", controllerKey: "100", unitNumber: "7" });
    expect(dc[2]!.device).toMatchObject({ addressType: "generated", backing: { deviceName: "Other" } });
    expect(p.powerCycle).toEqual([]);
    const generated = view({ nics: [{ ...view().nics[0]!, addressType: "generated" }] });
    expect(deviceChange(planUpdate(generated, { nics: [{ backing: { kind: "standard", networkName: "VM Network" }, model: "e1000" }] }))[1]!.device).toMatchObject({ addressType: "generated" });
    expect(deviceChange(planUpdate(view(), { nics: [] }))).toEqual([{ operation: "remove", device: nicDevice(4000, "VirtualVmxnet3") }]);
  });

  it("powers off to change a card of a model it does not hot-plug", () => {
    const pcnet = view({ nics: [{ ...view().nics[0]!, model: "VirtualPCNet32", device: nicDevice(4000, "VirtualPCNet32") }] });
    expect(planUpdate(pcnet, { nics: [] }).powerCycle).toEqual(["nics[0] removed (VM Network): a VirtualPCNet32 card is changed only while powered off"]);
  });
});

describe("planUpdate: root disk", () => {
  it("grows a disk without parents by an edit in the same spec, live on SCSI", () => {
    const flat = view({ disks: [{ ...view().disks[0]!, parents: [] }] });
    const p = planUpdate(flat, { rootDiskKb: 8192, cpus: 2 });
    expect(deviceChange(p)).toEqual([{ operation: "edit", device: { $type: "VirtualDisk", key: "2000", capacityInKB: 8192, capacityInBytes: 8192 * 1024 } }]);
    expect(p.disk).toEqual({ kind: "extend", key: 2000, fileName: "[ds] web/web.vmdk", fromKb: 4096, toKb: 8192 });
    expect(p.powerCycle).toEqual([]);
    const ide = view({ disks: [{ ...flat.disks[0]!, controllerKey: 200, controllerType: "VirtualIDEController" }] });
    expect(planUpdate(ide, { rootDiskKb: 8192 }).powerCycle).toEqual(["rootDiskGb 0 → 0.01: an IDE disk grows only while powered off"]);
  });

  it("consolidates a linked clone: the delta swapped for resized.vmdk at its controller and unit, with the VM off", () => {
    const p = planUpdate(view(), { rootDiskKb: 8192 });
    expect(p.disk).toEqual({ kind: "consolidate", key: 2000, fileName: "[ds] web/web.vmdk", parents: [BASE], resized: "[ds] web/resized.vmdk", fromKb: 4096, toKb: 8192 });
    expect(deviceChange(p)).toEqual([
      { operation: "remove", device: { $type: "VirtualDisk", key: "2000", capacityInKB: "4096" } },
      {
        operation: "add",
        device: {
          $type: "VirtualDisk",
          key: -400,
          backing: { $type: "VirtualDiskFlatVer2BackingInfo", fileName: "[ds] web/resized.vmdk", diskMode: "persistent" },
          controllerKey: 1000,
          unitNumber: 0,
          capacityInKB: 8192,
        },
      },
    ]);
    expect(p.powerCycle).toEqual(["rootDiskGb 0 → 0.01: growth of a linked clone: its disk is copied into one and grown while powered off"]);
    expect(() => planUpdate(view(), { rootDiskKb: 1024 })).toThrow(VmUpdateError);
  });
});

// ---------------------------------------------------------------------------
// Against the simulator

const DS = "LocalDS_0";
// The cached image (prepareRootDisk finds it at its cache place): a linked clone's parent.
const base = cacheLocation(DS, "upd", "img", "disk").disk;
let sim: Vcsim;
let client: VimClient;
let dc: Datacenter;
let cluster: Cluster;
let dvpg: DistributedNicBacking;

beforeAll(async () => {
  sim = await startVcsim({ clusters: 1, hosts: 2, drs: false });
  client = await VimClient.connect(simOptions(sim));
  dc = await getDatacenter(client);
  cluster = await getCluster(client, dc, sim.info.inventory.datacenters[0]!.clusters[0]!.name);
  const dvs = await getDistributedSwitch(client, dc, sim.info.inventory.datacenters[0]!.distributedSwitches[0]!);
  const pg = await getDistributedPortGroup(client, dvs.portgroups[dvs.portgroups.length - 1]!);
  dvpg = { kind: "distributed", switchUuid: dvs.uuid, portgroupKey: pg!.key };
  await makeDirectory(client, dc, base.parent, { createParents: true });
  await createDisk(client, dc, base.toString(), 4096);
});
afterAll(async () => {
  await client?.close();
  await sim?.stop();
});

function spec(name: string, over: Partial<VmSpecOptions> = {}): Omit<VmSpecOptions, "vnc"> {
  return {
    name,
    datastore: DS,
    guestId: "ubuntu64Guest",
    numCpus: 2,
    memoryMb: 256,
    adapterType: "lsiLogic",
    rootDisk: { kind: "linkedClone", base, capacityKb: 4096 },
    nics: [{ backing: { kind: "standard", networkName: "VM Network" } }],
    ...over,
  };
}

async function spawn(name: string, over: Partial<VmSpecOptions> = {}): Promise<VmView> {
  const made = await spawnVm(client, { cluster, spec: spec(name, over) });
  return (await readVm(client, made.vm))!;
}

/** Plans and applies against a fresh read; the calls the apply made, and the VM read after. */
async function update(vm: VmView, want: VmChanges): Promise<{ plan: UpdatePlan; methods: Record<string, number>; soapRequests: number; after: VmView }> {
  const before = (await readVm(client, vm.vm))!;
  const plan = planUpdate(before, want);
  await sim.control.resetStats();
  await applyUpdate(client, dc, before, plan);
  const { methods, soapRequests } = await sim.control.resetStats();
  return { plan, methods, soapRequests, after: (await readVm(client, vm.vm))! };
}

const RawExtraConfig = z.object({ "config.extraConfig": z.unknown() });
async function extraConfigKeys(vm: MoRef): Promise<string[]> {
  const raw = (await new PropertyCollector(client).get(vm, RawExtraConfig))["config.extraConfig"];
  const list = (Array.isArray(raw) ? raw : raw ? [raw] : []) as Array<{ key: string }>;
  return list.map((o) => o.key);
}

/** A device's PCI controller and unit, as read. */
function slot(n: { device: unknown }): unknown[] {
  const d = n.device as Record<string, unknown>;
  return [d.controllerKey, d.unitNumber];
}

async function sizes(folder: DatastorePath): Promise<Record<string, number | undefined>> {
  return Object.fromEntries((await listFolder(client, dc, folder, { details: true })).map((e) => [e.name, e.size]));
}

describe("applyUpdate: CPU and memory", () => {
  it("grows CPUs and memory with hot add in one ReconfigVM_Task and its one poll: no power cycle", async () => {
    const vm = await spawn("upd-hot", { cpuHotAdd: true, memoryHotAdd: true });
    const { plan, methods, soapRequests, after } = await update(vm, { cpus: 4, memoryMb: 512 });
    expect(plan.powerCycle).toEqual([]);
    expect(methods).toEqual({ ReconfigVM_Task: 1, RetrievePropertiesEx: 1 });
    expect(soapRequests).toBe(2);
    expect([after.cpus, after.memoryMb, after.powerState]).toEqual([4, 512, "poweredOn"]);
  });

  it("without hot add: powered off, reconfigured, powered on again", async () => {
    const vm = await spawn("upd-cold");
    const { plan, methods, after } = await update(vm, { cpus: 4, memoryMb: 512 });
    expect(plan.powerCycle).toEqual(["cpus 2 → 4: CPU hot add is off", "memoryMb 256 → 512: memory hot add is off"]);
    expect([methods.PowerOffVM_Task, methods.ReconfigVM_Task, methods.PowerOnVM_Task]).toEqual([1, 1, 1]);
    expect([after.cpus, after.memoryMb, after.powerState]).toEqual([4, 512, "poweredOn"]);
  });

  it("a shrink even with hot add: a power cycle", async () => {
    const vm = await spawn("upd-shrink", { numCpus: 4, memoryMb: 512, cpuHotAdd: true, memoryHotAdd: true });
    const { plan, methods, after } = await update(vm, { cpus: 2, memoryMb: 256 });
    expect(plan.powerCycle).toHaveLength(2);
    expect([methods.PowerOffVM_Task, methods.PowerOnVM_Task]).toEqual([1, 1]);
    expect([after.cpus, after.memoryMb, after.powerState]).toEqual([2, 256, "poweredOn"]);
  });

  it("a suspended VM: powered off, reconfigured, suspended again", async () => {
    const vm = await spawn("upd-suspended");
    await runTask(client, "SuspendVM_Task", vm.vm);
    const { methods, after } = await update(vm, { cpus: 4 });
    expect([methods.PowerOffVM_Task, methods.ReconfigVM_Task, methods.PowerOnVM_Task, methods.SuspendVM_Task]).toEqual([1, 1, 1, 1]);
    expect([after.cpus, after.powerState]).toEqual([4, "suspended"]);
  });

  it("turns hot add on with a power cycle; the next CPU growth is live", async () => {
    const vm = await spawn("upd-flags");
    const first = await update(vm, { cpuHotAdd: true, memoryHotAdd: true });
    expect([first.methods.PowerOffVM_Task, first.methods.PowerOnVM_Task]).toEqual([1, 1]);
    expect([first.after.cpuHotAdd, first.after.memoryHotAdd, first.after.powerState]).toEqual([true, true, "poweredOn"]);
    const second = await update(vm, { cpus: 4, memoryMb: 512 });
    expect(second.methods).toEqual({ ReconfigVM_Task: 1, RetrievePropertiesEx: 1 });
  });

  it("ends in the wanted power state: off, with no power-on", async () => {
    const vm = await spawn("upd-off");
    const { methods, after } = await update(vm, { cpus: 1, powerState: "poweredOff" });
    expect(methods.PowerOnVM_Task).toBeUndefined();
    expect([after.cpus, after.powerState]).toEqual([1, "poweredOff"]);
  });
});

describe("applyUpdate: NICs, metadata, annotation", () => {
  it("moves, changes the model of (MAC kept), adds and removes NICs live", async () => {
    const vm = await spawn("upd-nics", {
      nics: [
        { backing: { kind: "standard", networkName: "VM Network" }, macAddress: "00:50:56:aa:bb:01" },
        { backing: { kind: "standard", networkName: "VM Network" }, model: "e1000" },
      ],
    });
    const first = await update(vm, {
      nics: [
        { backing: { kind: "standard", networkName: "VM Network" }, model: "e1000e" },
        { backing: dvpg, model: "e1000" },
        { backing: { kind: "standard", networkName: "VM Network" } },
      ],
    });
    expect(first.plan.powerCycle).toEqual([]);
    expect(first.methods.PowerOffVM_Task).toBeUndefined();
    expect(first.methods.ReconfigVM_Task).toBe(1);
    // By key, the order vCenter keeps the cards in: the new e1000e took the freed slot of the card it replaced.
    const nics = [...first.after.nics].sort((a, b) => a.key - b.key);
    const e1000 = vm.nics.find((n) => n.model === "e1000")!;
    expect(nics.map((n) => [n.model, n.backing.kind])).toEqual([
      ["e1000e", "standard"],
      ["e1000", "distributed"],
      ["vmxnet3", "standard"],
    ]);
    expect([nics[0]!.macAddress, nics[0]!.addressType]).toEqual(["00:50:56:aa:bb:01", "manual"]);
    expect(slot(nics[0]!)).toEqual(slot([...vm.nics].sort((a, b) => a.key - b.key)[0]!)); // the replaced card's slot
    expect(nics[1]!.key).toBe(e1000.key); // moved in place: the same card
    expect(nics[1]!.backing).toEqual(dvpg);
    expect(first.after.powerState).toBe("poweredOn");

    const second = await update(vm, { nics: [{ backing: { kind: "standard", networkName: "VM Network" }, model: "e1000e" }] });
    expect(second.plan.changes).toEqual(["nics[1] removed (" + `${dvpg.switchUuid}/${dvpg.portgroupKey}` + ")", "nics[2] removed (VM Network)"]);
    expect(second.after.nics.map((n) => n.key)).toEqual([nics[0]!.key]);
  });

  it("sets, changes and removes metadata, and the annotation, with no extraConfig key left twice", async () => {
    const vm = await spawn("upd-meta", { metadata: { a: "1", b: "2" }, annotation: "one" });
    const first = await update(vm, { metadata: { a: "1", b: "3", c: "4" }, annotation: "two" });
    expect(first.after.metadata).toEqual({ a: "1", b: "3", c: "4" });
    expect(first.after.annotation).toBe("two");
    const keys = await extraConfigKeys(vm.vm);
    expect(keys.length).toBe(new Set(keys).size);
    const second = await update(vm, { metadata: {} });
    expect(second.after.metadata).toEqual({});
    expect((await extraConfigKeys(vm.vm)).filter((k) => k.startsWith(METADATA_PREFIX))).toEqual([]);
    expect(second.after.vncPort).toBe(vm.vncPort); // other keys stay
  });
});

describe("applyUpdate: root disk growth", () => {
  it("a full copy: grown by the one reconfigure, live, its file extended", async () => {
    const rd = await prepareRootDisk(client, { datacenter: dc, datastore: DS, cachedOn: DS, cachePrefix: "upd", imageId: "img", capacityBytes: 4096 * 1024, linkedClone: false, vmName: "upd-full" });
    const vm = await spawn("upd-full", { rootDisk: rd.disk });
    const { methods, after } = await update(vm, { rootDiskKb: 8192 });
    expect(methods.ReconfigVM_Task).toBe(1);
    expect(methods.PowerOffVM_Task).toBeUndefined();
    expect(methods.CopyVirtualDisk_Task).toBeUndefined();
    expect(after.disks[0]!.capacityKb).toBe(8192);
    expect(after.disks[0]!.fileName).toBe(vm.disks[0]!.fileName);
    const flat = DatastorePath.parse(vm.disks[0]!.fileName).basename.replace(/\.vmdk$/, "-flat.vmdk");
    expect((await sizes(DatastorePath.parse(vm.disks[0]!.fileName).parent))[flat]).toBe(8192 * 1024);
  });

  it("a linked clone as Nova: consolidated into resized.vmdk while off, grown, the delta gone, the cached base untouched", async () => {
    const baseBefore = await sizes(base.parent);
    const vm = await spawn("upd-linked");
    expect(vm.disks[0]!.parents).toEqual([base.toString()]);
    const folder = DatastorePath.parse(vm.disks[0]!.fileName).parent;
    const { plan, methods, soapRequests, after } = await update(vm, { rootDiskKb: 8192 });
    expect(plan.disk?.kind).toBe("consolidate");
    expect(soapRequests).toBe(12); // six tasks, each a call and one poll
    expect([methods.PowerOffVM_Task, methods.CopyVirtualDisk_Task, methods.ExtendVirtualDisk_Task, methods.ReconfigVM_Task, methods.PowerOnVM_Task]).toEqual([1, 1, 1, 1, 1]);
    expect(after.disks).toHaveLength(1);
    expect(after.disks[0]).toMatchObject({ fileName: folder.join("resized.vmdk").toString(), parents: [], capacityKb: 8192, controllerKey: vm.disks[0]!.controllerKey, unitNumber: 0 });
    expect(after.powerState).toBe("poweredOn");
    const files = await sizes(folder);
    expect(files["resized-flat.vmdk"]).toBe(8192 * 1024);
    expect(Object.keys(files).filter((f) => f.startsWith("upd-linked") && f.endsWith(".vmdk"))).toEqual([]);
    expect(await sizes(base.parent)).toEqual(baseBefore);
  });

  it("a failed reconfigure half-way leaves the linked clone attached and the VM on; the re-run completes", async () => {
    const vm = await spawn("upd-retry");
    await sim.control.addRule({ kind: "taskError", method: "ReconfigVM_Task", fault: "GenericVmConfigFault", message: "injected" });
    const err = await rejection(applyUpdate(client, dc, vm, planUpdate(vm, { rootDiskKb: 8192 })));
    await sim.control.clearRules();
    expect(err.message).toMatch(/injected/);
    const between = (await readVm(client, vm.vm))!;
    expect([between.disks[0]!.fileName, between.disks[0]!.parents, between.powerState]).toEqual([vm.disks[0]!.fileName, [base.toString()], "poweredOn"]);
    expect(await fileExists(client, dc, DatastorePath.parse(vm.disks[0]!.fileName))).toBe(true);
    // The copy left behind is replaced by the re-run's.
    expect(await fileExists(client, dc, DatastorePath.parse(vm.disks[0]!.fileName).parent.join("resized.vmdk"))).toBe(true);
    const { methods, after } = await update(vm, { rootDiskKb: 8192 });
    expect([methods.CopyVirtualDisk_Task, methods.DeleteVirtualDisk_Task]).toEqual([2, 2]); // the leftover's, then the delta's
    expect(after.disks[0]).toMatchObject({ parents: [], capacityKb: 8192 });
  });
});

describe("applyUpdate: a failed step of a linked clone's growth", () => {
  for (const method of ["CopyVirtualDisk_Task", "ExtendVirtualDisk_Task"] as const) {
    it(`${method} failing: the VM back on its linked clone, the cached base kept, the re-run completes`, async () => {
      const vm = await spawn(`upd-fail-${method.slice(0, 4).toLowerCase()}`);
      await sim.control.addRule({ kind: "taskError", method, fault: "NoDiskSpace", message: "no space" });
      const err = await rejection(applyUpdate(client, dc, vm, planUpdate(vm, { rootDiskKb: 8192 })));
      await sim.control.clearRules();
      expect(err.message).toMatch(/no space/);
      const between = (await readVm(client, vm.vm))!;
      expect([between.disks[0]!.parents, between.powerState]).toEqual([[base.toString()], "poweredOn"]);
      expect(await fileExists(client, dc, base)).toBe(true);
      const { after } = await update(vm, { rootDiskKb: 8192 });
      expect(after.disks[0]).toMatchObject({ parents: [], capacityKb: 8192 });
      expect(after.powerState).toBe("poweredOn");
    });
  }
});

describe("the simulator reconfigures as vCenter", () => {
  const reconfigure = (vm: MoRef, s: Record<string, unknown>) => runTask(client, "ReconfigVM_Task", vm, { spec: s });

  it("refuses CPU / memory changes a running VM cannot take: InvalidPowerState", async () => {
    const vm = await spawn("sim-hot", { memoryHotAdd: true });
    for (const s of [{ numCPUs: 4 }, { memoryMB: 128 }, { numCoresPerSocket: 2 }, { cpuHotAddEnabled: true }]) {
      const err = await rejection(reconfigure(vm.vm, s));
      expect(err).toBeInstanceOf(VimFault);
      expect((err as VimFault).code).toBe("InvalidPowerState");
      expect(err.message).toMatch(/cannot be performed in the current state \(Powered on\)/);
    }
    await reconfigure(vm.vm, { memoryMB: 512 }); // hot add on: allowed
    await runTask(client, "PowerOffVM_Task", vm.vm);
    await reconfigure(vm.vm, { numCPUs: 4, memoryMB: 128 }); // off: anything
    expect((await readVm(client, vm.vm))!).toMatchObject({ cpus: 4, memoryMb: 128 });
  });

  it("refuses to grow a disk with a parent: InvalidDeviceOperation", async () => {
    const vm = await spawn("sim-parent");
    await runTask(client, "PowerOffVM_Task", vm.vm);
    const disk = vm.disks[0]!;
    const err = await rejection(reconfigure(vm.vm, { deviceChange: [{ operation: "edit", device: { ...(disk.device as object), capacityInKB: 8192 } }] }));
    expect((err as VimFault).code).toBe("InvalidDeviceOperation");
    expect(err.message).toMatch(/Invalid operation for device '0'\. Disks with parents cannot be expanded/);
    expect((await readVm(client, vm.vm))!.disks[0]!.capacityKb).toBe(4096);
  });

  it("replaces an extraConfig key's value and removes a key set to \"\"", async () => {
    const vm = await spawn("sim-extra");
    await reconfigure(vm.vm, { extraConfig: [{ key: "x.y", value: "1" }] });
    await reconfigure(vm.vm, { extraConfig: [{ key: "x.y", value: "2" }] });
    expect((await extraConfigKeys(vm.vm)).filter((k) => k === "x.y")).toHaveLength(1);
    expect((await readVm(client, vm.vm))!.extraConfig["x.y"]).toBe("2");
    await reconfigure(vm.vm, { extraConfig: [{ key: "x.y", value: "" }] });
    expect(await extraConfigKeys(vm.vm)).not.toContain("x.y");
  });

  it("extends a flat disk's file when an edit grows capacityInKB, and reads back both capacity fields", async () => {
    const rd = await prepareRootDisk(client, { datacenter: dc, datastore: DS, cachedOn: DS, cachePrefix: "upd", imageId: "img", capacityBytes: 4096 * 1024, linkedClone: false, vmName: "sim-grow" });
    const vm = await spawn("sim-grow", { rootDisk: rd.disk });
    const disk = vm.disks[0]!;
    const device = disk.device as Record<string, unknown>;
    await reconfigure(vm.vm, { deviceChange: [{ operation: "edit", device: { ...device, capacityInKB: 6144 } }] });
    const read = (await readVm(client, vm.vm))!.disks[0]!.device as Record<string, unknown>;
    expect([read.capacityInKB, read.capacityInBytes]).toEqual(["6144", String(6144 * 1024)]);
    expect((await sizes(DatastorePath.parse(disk.fileName).parent))["sim-grow-flat.vmdk"]).toBe(6144 * 1024);
  });

  it("copies a linked clone's disk as one standalone disk holding the chain", async () => {
    const vm = await spawn("sim-copy");
    const copy = DatastorePath.parse(vm.disks[0]!.fileName).parent.join("copy.vmdk");
    await runTask(client, "CopyVirtualDisk_Task", client.serviceContent.virtualDiskManager!, { sourceName: vm.disks[0]!.fileName, sourceDatacenter: dc.ref, destName: copy.toString(), destDatacenter: dc.ref });
    expect((await sizes(copy.parent))["copy-flat.vmdk"]).toBe(4096 * 1024);
  });
});
