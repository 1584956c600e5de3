// Reading an instance's VM back (vm-read.ts) against the simulator: a VM made as spawnVm
// makes it (SCSI controller, linked-clone disk on a cached base, a standard and a
// distributed NIC, a URI serial port, metadata and VNC in extraConfig) reads back exactly,
// in one property-collector call; resolveVmId by instance uuid (one call) and by managed
// object id; a VM gone reads as undefined.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import { DatastorePath, makeDirectory } from "../../provider/vsphere/datastore.js";
import { getCluster, getDatacenter, getHosts, type Cluster, type Datacenter } from "../../provider/vsphere/inventory.js";
import { getDistributedPortGroup, getDistributedSwitch } from "../../provider/vsphere/network.js";
import { MoRef } from "../../provider/vsphere/soap/xml.js";
import { runTask } from "../../provider/vsphere/task.js";
import { upload } from "../../provider/vsphere/transfer.js";
import { removeVm } from "../../provider/vsphere/vm-lifecycle.js";
import { InvalidVmIdError, resolveVmId, readVm, vmFolderPath } from "../../provider/vsphere/vm-read.js";
import { METADATA_PREFIX, type DistributedNicBacking } from "../../provider/vsphere/vm-spec.js";
import { spawnVm, type SpawnOptions, type SpawnedVm } from "../../provider/vsphere/vmops.js";
import { simOptions } from "../support/clients.js";
import { rejection } from "../support/rejection.js";
import { createDisk, createVm } from "../support/vms.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";

const DS = "LocalDS_0";
const base = new DatastorePath(DS, "read_base/img/img.vmdk");
const UUID = "5012a3b4-c5d6-47e8-89ab-cdef01234567";
let sim: Vcsim;
let client: VimClient;
let dc: Datacenter;
let cluster: Cluster;
let dvpg: DistributedNicBacking;
let made: SpawnedVm;

function options(name: string, instanceUuid: string): SpawnOptions {
  return {
    cluster,
    spec: {
      name,
      datastore: DS,
      guestId: "ubuntu64Guest",
      numCpus: 2,
      coresPerSocket: 2,
      memoryMb: 256,
      cpuHotAdd: true,
      memoryHotAdd: false,
      cpuAllocation: { reservation: 100, limit: 2000, shares: { level: "high" } },
      memoryAllocation: { reservation: 64, limit: -1, shares: { level: "custom", count: 1234 } },
      instanceUuid,
      annotation: "pulumi urn:pulumi:dev::proj::vmware:Instance::web-1",
      adapterType: "lsiLogic",
      rootDisk: { kind: "linkedClone", base, capacityKb: 4096 },
      nics: [
        { backing: { kind: "standard", networkName: "VM Network" }, macAddress: "00:50:56:aa:bb:01" },
        { backing: dvpg, model: "e1000" },
      ],
      serialPort: { serviceUri: "telnet://:50001", proxyUri: "telnet://proxy.example:13370" },
      metadata: { owner: "team-a", "role.tier": "web front" },
      extraConfig: { "guestinfo.hello": "world" },
    },
  };
}

beforeAll(async () => {
  sim = await startVcsim({ clusters: 1, hosts: 2, drs: false });
  client = await VimClient.connect(simOptions(sim));
  dc = await getDatacenter(client);
  cluster = await getCluster(client, dc, sim.info.inventory.datacenters[0]!.clusters[0]!.name);
  const dvs = await getDistributedSwitch(client, dc, sim.info.inventory.datacenters[0]!.distributedSwitches[0]!);
  const pg = await getDistributedPortGroup(client, dvs.portgroups.find((p) => p.value !== dvs.portgroups[0]?.value) ?? dvs.portgroups[0]!);
  dvpg = { kind: "distributed", switchUuid: dvs.uuid, portgroupKey: pg!.key };
  await makeDirectory(client, dc, base.parent, { createParents: true });
  await createDisk(client, dc, base.toString(), 4096);
  made = await spawnVm(client, options("read-one", UUID));
});
afterAll(async () => {
  await client?.close();
  await sim?.stop();
});

describe("readVm", () => {
  it("reads a spawned VM back exactly, in one round trip", async () => {
    await sim.control.resetStats();
    const view = await readVm(client, made.vm);
    const stats = await sim.control.stats();
    expect(stats.methods).toEqual({ RetrievePropertiesEx: 1 });
    expect(view).toBeDefined();
    const v = view!;
    expect(v.vm.equals(made.vm)).toBe(true);
    expect(v).toMatchObject({
      name: "read-one",
      instanceUuid: UUID,
      guestId: "ubuntu64Guest",
      annotation: "pulumi urn:pulumi:dev::proj::vmware:Instance::web-1",
      cpus: 2,
      coresPerSocket: 2,
      memoryMb: 256,
      cpuHotAdd: true,
      memoryHotAdd: false,
      // vCenter gives a level's share count: high is 2000 per virtual CPU.
      cpuAllocation: { reservation: 100, limit: 2000, shares: { level: "high", count: 4000 } },
      memoryAllocation: { reservation: 64, limit: -1, shares: { level: "custom", count: 1234 } },
      powerState: "poweredOn",
      vmxPath: `[${DS}] read-one/read-one.vmx`,
      metadata: { owner: "team-a", "role.tier": "web front" },
      vncPort: made.vncPort,
      vncEnabled: true,
    });
    expect(vmFolderPath(v).toString()).toBe(`[${DS}] read-one`);
    // Where it runs: the host spawnVm placed it on, and that host's name from the same call.
    expect(v.host?.equals(made.host!)).toBe(true);
    const [placed] = await getHosts(client, [made.host!]);
    expect(v.hostName).toBe(placed!.name);
    expect(v.resourcePool?.equals(cluster.resourcePool)).toBe(true);
    expect(v.extraConfig).toMatchObject({
      [`${METADATA_PREFIX}owner`]: "team-a",
      [`${METADATA_PREFIX}role.tier`]: "web front",
      "guestinfo.hello": "world",
      "RemoteDisplay.vnc.enabled": "true",
      "RemoteDisplay.vnc.port": String(made.vncPort),
    });

    // The SCSI controller the create added, beside vCenter's own IDE and PCI controllers.
    const scsi = v.controllers.filter((c) => c.type === "VirtualLsiLogicController");
    expect(scsi).toEqual([{ key: made.devices.controller, type: "VirtualLsiLogicController", busNumber: 0 }]);
    expect(v.controllers.map((c) => c.type)).toEqual(expect.arrayContaining(["VirtualIDEController", "VirtualPCIController"]));

    // The root disk: a delta in the VM's folder whose parent is the cached base.
    expect(v.disks).toHaveLength(1);
    expect(v.disks[0]).toMatchObject({
      key: made.devices.disk,
      controllerKey: made.devices.controller,
      unitNumber: 0,
      controllerType: "VirtualLsiLogicController",
      fileName: `[${DS}] read-one/read-one.vmdk`,
      capacityKb: 4096,
      parents: [base.toString()],
    });
    expect((v.disks[0]!.device as { $type?: string }).$type).toBe("VirtualDisk");

    expect(v.nics).toHaveLength(2);
    expect(v.nics[0]).toMatchObject({
      key: made.devices.nic0,
      model: "vmxnet3",
      macAddress: "00:50:56:aa:bb:01",
      addressType: "manual",
      backing: { kind: "standard", networkName: "VM Network" },
      startConnected: true,
    });
    expect((v.nics[0]!.backing as { network?: MoRef }).network?.type).toBe("Network");
    expect(v.nics[1]).toMatchObject({ key: made.devices.nic1, model: "e1000", addressType: "generated", backing: dvpg });
    expect(v.nics[1]!.macAddress).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    expect((v.nics[1]!.device as { $type?: string }).$type).toBe("VirtualE1000");

    expect(v.serialPorts).toEqual([{ key: made.devices.serial, serviceUri: "telnet://:50001", proxyUri: "telnet://proxy.example:13370", direction: "server" }]);
    expect(v.cdroms).toEqual([]);
  });

  it("reads an ISO image's VM: the ISO on a CD-ROM, a blank thin root disk without parents", async () => {
    const iso = new DatastorePath(DS, "read_base/cd/cd.iso");
    await upload(client, dc, iso, [Buffer.alloc(2048)], { length: 2048, checksums: [] });
    const o = options("read-iso", "5012a3b4-c5d6-47e8-89ab-cdef0123456d");
    const vm = await spawnVm(client, { ...o, spec: { ...o.spec, adapterType: "ide", rootDisk: { kind: "blank", capacityKb: 8192 }, cdromIso: iso }, powerOn: false });
    const v = (await readVm(client, vm.vm))!;
    expect(v.cdroms).toEqual([{ key: vm.devices.cdrom, iso: iso.toString() }]);
    expect(v.disks).toHaveLength(1);
    expect(v.disks[0]).toMatchObject({ controllerKey: 200, controllerType: "VirtualIDEController", fileName: `[${DS}] read-iso/read-iso.vmdk`, capacityKb: 8192, parents: [], thinProvisioned: true });
  });

  it("gives each NIC as read, which an edit deviceChange sends back; NICs stay in the order they were added", async () => {
    const vm = (await spawnVm(client, { ...options("read-edit", "5012a3b4-c5d6-47e8-89ab-cdef0123456e"), powerOn: false, vnc: false })).vm;
    const before = (await readVm(client, vm))!;
    const nic = before.nics[0]!.device as Record<string, unknown>;
    const edited = { ...nic, connectable: { ...(nic.connectable as Record<string, unknown>), startConnected: "false" } };
    await runTask(client, "ReconfigVM_Task", vm, {
      spec: { deviceChange: [{ operation: "edit", device: edited }] },
    });
    const after = (await readVm(client, vm))!;
    expect(after.nics[0]).toMatchObject({ key: before.nics[0]!.key, startConnected: false, macAddress: before.nics[0]!.macAddress, backing: before.nics[0]!.backing });
    expect(after.nics.map((n) => n.key)).toEqual(before.nics.map((n) => n.key));
  });

  it("reads a VM gone as undefined", async () => {
    const gone = await spawnVm(client, { ...options("read-gone", "5012a3b4-c5d6-47e8-89ab-cdef01234568"), powerOn: false });
    await removeVm(client, dc, gone.vm);
    expect(await readVm(client, gone.vm)).toBeUndefined();
    expect(await readVm(client, new MoRef("VirtualMachine", "vm-does-not-exist"))).toBeUndefined();
  });

  it("reads the power state as it is", async () => {
    const off = await spawnVm(client, { ...options("read-off", "5012a3b4-c5d6-47e8-89ab-cdef01234569"), powerOn: false, vnc: false });
    const v = await readVm(client, off.vm);
    expect(v).toMatchObject({ powerState: "poweredOff", vncEnabled: false });
    expect(v!.vncPort).toBeUndefined();
    await runTask(client, "PowerOnVM_Task", off.vm, {});
    await runTask(client, "SuspendVM_Task", off.vm, {});
    expect((await readVm(client, off.vm))?.powerState).toBe("suspended");
  });
});

// The simulator keeps these as vCenter does (allocations: test/vcsim/vmread.go; extraConfig:
// vmupdate.go); each read shows it.
describe("readVm after a reconfigure", () => {
  it("shows one value per extraConfig key, and no key set to empty", async () => {
    const vm = (await spawnVm(client, { ...options("read-extra", "5012a3b4-c5d6-47e8-89ab-cdef0123456a"), powerOn: false, vnc: false })).vm;
    await runTask(client, "ReconfigVM_Task", vm, {
      spec: { extraConfig: [{ key: `${METADATA_PREFIX}owner`, value: "team-b" }, { key: `${METADATA_PREFIX}role.tier`, value: "" }] },
    });
    const v = await readVm(client, vm);
    expect(v!.metadata).toEqual({ owner: "team-b" });
    expect(Object.keys(v!.extraConfig)).not.toContain(`${METADATA_PREFIX}role.tier`);
  });

  it("keeps the allocation fields a spec leaves out, and the shares of a level in step with the VM's size", async () => {
    const vm = (await spawnVm(client, { ...options("read-alloc", "5012a3b4-c5d6-47e8-89ab-cdef0123456b"), powerOn: false, vnc: false })).vm;
    await runTask(client, "ReconfigVM_Task", vm, { spec: { numCPUs: 4, memoryMB: 512, cpuAllocation: { limit: 3000 }, memoryAllocation: { shares: { shares: 0, level: "low" } } } });
    const v = await readVm(client, vm);
    expect(v).toMatchObject({
      cpus: 4,
      memoryMb: 512,
      cpuAllocation: { reservation: 100, limit: 3000, shares: { level: "high", count: 8000 } },
      memoryAllocation: { reservation: 64, limit: -1, shares: { level: "low", count: 2560 } },
    });
  });

  it("reads vCenter's allocations for a VM created without any", async () => {
    const spec = options("read-default", "5012a3b4-c5d6-47e8-89ab-cdef0123456c").spec;
    const { cpuAllocation: _c, memoryAllocation: _m, ...rest } = spec;
    const vm = (await spawnVm(client, { cluster, spec: rest, powerOn: false, vnc: false })).vm;
    expect(await readVm(client, vm)).toMatchObject({
      cpuAllocation: { reservation: 0, limit: -1, shares: { level: "normal", count: 2000 } },
      memoryAllocation: { reservation: 0, limit: -1, shares: { level: "normal", count: 2560 } },
    });
  });
});

describe("resolveVmId", () => {
  it("finds a VM by its instance uuid in one round trip, in any letter case, with or without the datacenter", async () => {
    await sim.control.resetStats();
    expect((await resolveVmId(client, dc, UUID))?.equals(made.vm)).toBe(true);
    expect((await sim.control.stats()).methods).toEqual({ FindByUuid: 1 });
    expect((await resolveVmId(client, undefined, UUID.toUpperCase()))?.equals(made.vm)).toBe(true);
  });

  it("finds a VM by its managed object id, bare or typed", async () => {
    await sim.control.resetStats();
    expect((await resolveVmId(client, dc, made.vm.value))?.equals(made.vm)).toBe(true);
    expect((await sim.control.stats()).methods).toEqual({ RetrievePropertiesEx: 1 });
    expect((await resolveVmId(client, undefined, made.vm.toString()))?.equals(made.vm)).toBe(true);
  });

  it("answers undefined for a VM that does not exist", async () => {
    expect(await resolveVmId(client, dc, "5012a3b4-0000-47e8-89ab-cdef01234567")).toBeUndefined();
    expect(await resolveVmId(client, dc, "vm-999999")).toBeUndefined();
    expect(await resolveVmId(client, dc, "VirtualMachine:vm-999999")).toBeUndefined();
  });

  it("looks for an instance uuid in the datacenter given only", async () => {
    const two = await startVcsim({ datacenters: 2, clusters: 1, hosts: 1, dvs: false });
    const c = await VimClient.connect(simOptions(two));
    try {
      const [dc0, dc1] = await Promise.all(two.info.inventory.datacenters.map((d) => getDatacenter(c, d.name)));
      const inDc1 = two.info.inventory.datacenters[1]!;
      const cl = await getCluster(c, dc1!, inDc1.clusters[0]!.name);
      const vm = await createVm(c, dc1!, cl, "read-dc1", inDc1.datastores[0]!);
      const uuid = (await readVm(c, vm))!.instanceUuid;
      expect(await resolveVmId(c, dc0, uuid)).toBeUndefined();
      expect((await resolveVmId(c, dc1, uuid))?.equals(vm)).toBe(true);
      expect((await resolveVmId(c, undefined, uuid))?.equals(vm)).toBe(true);
    } finally {
      await c.close();
      await two.stop();
    }
  });

  it("refuses an id that is neither", async () => {
    expect(await rejection(resolveVmId(client, dc, "HostSystem:host-1"))).toBeInstanceOf(InvalidVmIdError);
    expect(await rejection(resolveVmId(client, dc, "web 1"))).toBeInstanceOf(InvalidVmIdError);
  });
});
