// The instance's create spec: the controller of each adapter type and the disk's
// place on it, the three root disks (linked clone, full copy, blank beside an ISO),
// NIC models and backings, MACs, the serial port and extraConfig; every variant
// goes through the SOAP writer (which refuses a field its type lacks); and one
// CreateVM_Task against a simulator that checks schema order, read back.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { VimClient } from "../../provider/vsphere/client.js";
import { DatastorePath, makeDirectory } from "../../provider/vsphere/datastore.js";
import { getCluster, getDatacenter, type Cluster, type Datacenter } from "../../provider/vsphere/inventory.js";
import { findNetwork } from "../../provider/vsphere/network.js";
import { PropertyCollector } from "../../provider/vsphere/property.js";
import { arrayOf, dataObject, int, moRef, str } from "../../provider/vsphere/schema.js";
import { buildEnvelope } from "../../provider/vsphere/soap/envelope.js";
import { MoRef } from "../../provider/vsphere/soap/xml.js";
import { runTask } from "../../provider/vsphere/task.js";
import type { AdapterType } from "../../provider/vsphere/vmdk.js";
import {
  CONSOLE_DELAY_KEY,
  METADATA_PREFIX,
  VmSpecError,
  buildVmConfigSpec,
  matchDevices,
  plannedDevices,
  type VmSpecOptions,
} from "../../provider/vsphere/vm-spec.js";
import { simOptions } from "../support/clients.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";
import { createDisk } from "../support/vms.js";

type Obj = Record<string, any>;

const BASE = "[ds1] _base/img/img.20.vmdk";
const net = new MoRef("Network", "network-7");

function options(over: Partial<VmSpecOptions> = {}): VmSpecOptions {
  return {
    name: "vm-1",
    datastore: "ds1",
    guestId: "ubuntu64Guest",
    numCpus: 2,
    memoryMb: 1024,
    adapterType: "lsiLogic",
    rootDisk: { kind: "linkedClone", base: BASE, capacityKb: 20 * 1024 * 1024 },
    ...over,
  };
}

const changes = (spec: Obj): Obj[] => spec.deviceChange as Obj[];
const device = (spec: Obj, type: string): Obj => {
  const found = changes(spec).filter((c) => c.device.$type === type);
  expect(found).toHaveLength(1);
  return found[0]!;
};
/** Serializes as CreateVM_Task would send it: throws on a field the type does not define. */
const envelope = (spec: Obj) => buildEnvelope("CreateVM_Task", new MoRef("Folder", "group-v3"), { config: spec, pool: new MoRef("ResourcePool", "resgroup-1") });

describe("the disk controller and the disk's place", () => {
  const scsi: Array<[AdapterType, string]> = [
    ["busLogic", "VirtualBusLogicController"],
    ["lsiLogic", "VirtualLsiLogicController"],
    ["lsiLogicsas", "VirtualLsiLogicSASController"],
    ["paraVirtual", "ParaVirtualSCSIController"],
  ];
  it.each(scsi)("%s: a new %s on bus 0, the disk at unit 0 on it", (adapterType, type) => {
    const spec = buildVmConfigSpec(options({ adapterType }));
    const ctl = device(spec, type);
    expect(ctl).toEqual({ operation: "add", device: { $type: type, key: expect.any(Number), busNumber: 0, sharedBus: "noSharing" } });
    expect(ctl.device.key).toBeLessThan(0);
    const disk = device(spec, "VirtualDisk").device;
    expect(disk.controllerKey).toBe(ctl.device.key);
    expect(disk.unitNumber).toBe(0);
    // The controller is added before the disk that names it.
    expect(changes(spec).indexOf(ctl)).toBeLessThan(changes(spec).findIndex((c) => c.device.$type === "VirtualDisk"));
    expect(() => envelope(spec)).not.toThrow();
  });

  it("ide: no controller added, the disk on the built-in IDE 200 at unit 0", () => {
    const spec = buildVmConfigSpec(options({ adapterType: "ide" }));
    expect(changes(spec).map((c) => c.device.$type)).toEqual(["VirtualDisk"]);
    expect(device(spec, "VirtualDisk").device).toMatchObject({ controllerKey: 200, unitNumber: 0 });
  });

  it("refuses an unknown adapter type, naming the option", () => {
    expect(() => buildVmConfigSpec(options({ adapterType: "scsi" as AdapterType }))).toThrow(VmSpecError);
    expect(() => buildVmConfigSpec(options({ adapterType: "scsi" as AdapterType }))).toThrow(/adapterType: "scsi" is not one of ide/);
  });
});

describe("the root disk", () => {
  it("linked clone: a delta in the VM's folder made by the create, whose parent is the cached base", () => {
    const c = device(buildVmConfigSpec(options()), "VirtualDisk");
    expect(c.operation).toBe("add");
    expect(c.fileOperation).toBe("create");
    expect(c.device.capacityInKB).toBe(20 * 1024 * 1024);
    expect(c.device.backing).toEqual({
      $type: "VirtualDiskFlatVer2BackingInfo",
      fileName: "[ds1] vm-1/vm-1.vmdk",
      diskMode: "persistent",
      parent: { $type: "VirtualDiskFlatVer2BackingInfo", fileName: BASE, diskMode: "persistent" },
    });
  });

  it("full copy: the copied disk attached as it is, no file operation", () => {
    const c = device(buildVmConfigSpec(options({ rootDisk: { kind: "copy", fileName: "[ds1] vm-1/vm-1.vmdk" } })), "VirtualDisk");
    expect(c).not.toHaveProperty("fileOperation");
    expect(c.device.backing).toEqual({ $type: "VirtualDiskFlatVer2BackingInfo", fileName: "[ds1] vm-1/vm-1.vmdk", diskMode: "persistent" });
    expect(c.device).not.toHaveProperty("capacityInKB");
    // Its folder exists already: the .vmx goes beside the disk, not into a folder vCenter would make.
    expect(buildVmConfigSpec(options({ name: "vm-1", rootDisk: { kind: "copy", fileName: "[ds1] vm-1/vm-1.vmdk" } })).files).toEqual({ vmPathName: "[ds1] vm-1/vm-1.vmx" });
  });

  it("ISO: a blank thin disk of the root size and the ISO on a CD-ROM (IDE 200 beside a SCSI disk)", () => {
    const spec = buildVmConfigSpec(options({ rootDisk: { kind: "blank", capacityKb: 10 * 1024 * 1024 }, cdromIso: "[ds1] _base/iso1/iso1.iso" }));
    const disk = device(spec, "VirtualDisk");
    expect(disk.fileOperation).toBe("create");
    expect(disk.device.backing).toEqual({ $type: "VirtualDiskFlatVer2BackingInfo", fileName: "[ds1] vm-1/vm-1.vmdk", diskMode: "persistent", thinProvisioned: true });
    expect(disk.device.capacityInKB).toBe(10 * 1024 * 1024);
    const cd = device(spec, "VirtualCdrom");
    expect(cd).not.toHaveProperty("fileOperation");
    expect(cd.device).toMatchObject({
      backing: { $type: "VirtualCdromIsoBackingInfo", fileName: "[ds1] _base/iso1/iso1.iso" },
      controllerKey: 200,
      unitNumber: 0,
      connectable: { startConnected: true, connected: true },
    });
    expect(() => envelope(spec)).not.toThrow();
  });

  it("ISO with an IDE disk: the disk keeps IDE 200, the CD-ROM goes to IDE 201", () => {
    const spec = buildVmConfigSpec(options({ adapterType: "ide", rootDisk: { kind: "blank", capacityKb: 1024 }, cdromIso: "[ds1] _base/iso1/iso1.iso" }));
    expect(device(spec, "VirtualDisk").device).toMatchObject({ controllerKey: 200, unitNumber: 0 });
    expect(device(spec, "VirtualCdrom").device).toMatchObject({ controllerKey: 201, unitNumber: 0 });
  });

  it("refuses a capacity that is not a positive whole number of KB", () => {
    expect(() => buildVmConfigSpec(options({ rootDisk: { kind: "blank", capacityKb: 0 } }))).toThrow(/rootDisk.capacityKb/);
    expect(() => buildVmConfigSpec(options({ rootDisk: { kind: "linkedClone", base: BASE, capacityKb: 1.5 } }))).toThrow(/rootDisk.capacityKb/);
  });
});

describe("NICs", () => {
  it("vmxnet3 by default, e1000 and e1000e by name, in the order given", () => {
    const spec = buildVmConfigSpec(
      options({
        nics: [
          { backing: { kind: "standard", networkName: "VM Network" } },
          { backing: { kind: "standard", networkName: "VM Network" }, model: "e1000" },
          { backing: { kind: "standard", networkName: "VM Network" }, model: "e1000e" },
        ],
      }),
    );
    const nics = changes(spec).filter((c) => c.device.$type.startsWith("VirtualVmxnet") || c.device.$type.startsWith("VirtualE1000"));
    expect(nics.map((c) => c.device.$type)).toEqual(["VirtualVmxnet3", "VirtualE1000", "VirtualE1000e"]);
    expect(new Set(nics.map((c) => c.device.key)).size).toBe(3);
    expect(nics.every((c) => c.device.key < 0 && c.fileOperation === undefined)).toBe(true);
  });

  it("a standard port group by name and Network; a distributed one by switch uuid and port group key", () => {
    const spec = buildVmConfigSpec(
      options({
        nics: [
          { backing: { kind: "standard", networkName: "pg-web", network: net } },
          { backing: { kind: "distributed", switchUuid: "50 1a 2b", portgroupKey: "dvportgroup-12" } },
        ],
      }),
    );
    const [std, dvs] = changes(spec).filter((c) => c.device.$type === "VirtualVmxnet3");
    expect(std!.device.backing).toEqual({ $type: "VirtualEthernetCardNetworkBackingInfo", deviceName: "pg-web", network: net });
    expect(dvs!.device.backing).toEqual({
      $type: "VirtualEthernetCardDistributedVirtualPortBackingInfo",
      port: { switchUuid: "50 1a 2b", portgroupKey: "dvportgroup-12" },
    });
    expect(() => envelope(spec)).not.toThrow();
  });

  it("a given MAC is manual (lower-cased), none is generated; connected, guest-controlled, wake-on-LAN as Nova", () => {
    const spec = buildVmConfigSpec(
      options({
        nics: [
          { backing: { kind: "standard", networkName: "a" }, macAddress: "00:50:56:AA:BB:CC" },
          { backing: { kind: "standard", networkName: "b" }, startConnected: false },
        ],
      }),
    );
    const [manual, generated] = changes(spec).filter((c) => c.device.$type === "VirtualVmxnet3").map((c) => c.device);
    expect(manual).toMatchObject({ addressType: "manual", macAddress: "00:50:56:aa:bb:cc", wakeOnLanEnabled: true });
    expect(manual.connectable).toEqual({ startConnected: true, allowGuestControl: true, connected: true });
    expect(generated.addressType).toBe("generated");
    expect(generated).not.toHaveProperty("macAddress");
    expect(generated.connectable).toEqual({ startConnected: false, allowGuestControl: true, connected: false });
  });

  it("refuses a malformed MAC and an unknown model, naming the NIC", () => {
    expect(() => buildVmConfigSpec(options({ nics: [{ backing: { kind: "standard", networkName: "a" }, macAddress: "00:50:56:aa:bb" }] }))).toThrow(
      /nics\[0\]\.macAddress/,
    );
    expect(() => buildVmConfigSpec(options({ nics: [{ backing: { kind: "standard", networkName: "a" }, model: "pcnet" as "e1000" }] }))).toThrow(/nics\[0\]\.model/);
  });
});

describe("serial port", () => {
  it("a URI backing to the service, direction server, through the proxy; none without a service URI", () => {
    const spec = buildVmConfigSpec(options({ serialPort: { serviceUri: "telnet://10.0.0.5:9000", proxyUri: "telnets://proxy:13370" } }));
    expect(device(spec, "VirtualSerialPort").device).toEqual({
      $type: "VirtualSerialPort",
      key: expect.any(Number),
      backing: { $type: "VirtualSerialPortURIBackingInfo", serviceURI: "telnet://10.0.0.5:9000", direction: "server", proxyURI: "telnets://proxy:13370" },
      connectable: { startConnected: true, allowGuestControl: true, connected: true },
      yieldOnPoll: true,
    });
    expect(() => envelope(spec)).not.toThrow();
    expect(changes(buildVmConfigSpec(options())).some((c) => c.device.$type === "VirtualSerialPort")).toBe(false);
  });
});

describe("identity, flavor and extraConfig", () => {
  it("carries name, uuid, guest, folder, CPUs, cores, memory, allocations and annotation", () => {
    const spec = buildVmConfigSpec(
      options({
        instanceUuid: "5c1a-uuid",
        annotation: "urn:pulumi:dev::p::vmware:Instance::web-1",
        numCpus: 4,
        coresPerSocket: 2,
        cpuAllocation: { reservation: 500, limit: 2000, shares: { level: "high" } },
        memoryAllocation: { shares: { level: "custom", count: 1234 } },
        cpuHotAdd: true,
        memoryHotAdd: true,
      }),
    );
    expect(spec).toMatchObject({
      name: "vm-1",
      instanceUuid: "5c1a-uuid",
      guestId: "ubuntu64Guest",
      annotation: "urn:pulumi:dev::p::vmware:Instance::web-1",
      files: { vmPathName: "[ds1]" },
      numCPUs: 4,
      numCoresPerSocket: 2,
      memoryMB: 1024,
      cpuAllocation: { reservation: 500, limit: 2000, shares: { shares: 0, level: "high" } },
      memoryAllocation: { shares: { shares: 1234, level: "custom" } },
      cpuHotAddEnabled: true,
      memoryHotAddEnabled: true,
    });
    expect(buildVmConfigSpec(options())).not.toHaveProperty("cpuHotAddEnabled");
    expect(spec.memoryAllocation).not.toHaveProperty("reservation");
    const xml = envelope(spec);
    // Schema order: numCPUs before numCoresPerSocket before memoryMB before deviceChange before allocations.
    const at = (tag: string) => xml.indexOf(`<${tag}>`);
    expect(at("numCPUs")).toBeLessThan(at("numCoresPerSocket"));
    expect(at("memoryMB")).toBeLessThan(at("deviceChange"));
    expect(at("deviceChange")).toBeLessThan(at("cpuAllocation"));
  });

  it("refuses cores per socket that do not divide the CPUs", () => {
    expect(() => buildVmConfigSpec(options({ numCpus: 3, coresPerSocket: 2 }))).toThrow(/coresPerSocket/);
  });

  it("metadata under its prefix, raw entries, VNC enabled on its port with a key map, and Nova's console delay in microseconds", () => {
    const spec = buildVmConfigSpec(
      options({ metadata: { team: "web" }, extraConfig: { "disk.EnableUUID": "TRUE" }, vnc: { port: 5901, keyMap: "de" }, consoleDelaySeconds: 2 }),
    );
    expect(spec.extraConfig).toEqual([
      { key: `${METADATA_PREFIX}team`, value: "web" },
      { key: "disk.EnableUUID", value: "TRUE" },
      { key: "RemoteDisplay.vnc.enabled", value: "true" },
      { key: "RemoteDisplay.vnc.port", value: "5901" },
      { key: "RemoteDisplay.vnc.keyMap", value: "de" },
      { key: CONSOLE_DELAY_KEY, value: "2000000" },
    ]);
    expect(CONSOLE_DELAY_KEY).toBe("keyboard.typematicMinDelay");
    expect(envelope(spec)).toContain('<value xsi:type="xsd:string">5901</value>');
  });

  it("no extraConfig when there is nothing to write; a zero console delay writes nothing; a VNC port outside 5900-6105 is refused", () => {
    expect(buildVmConfigSpec(options())).not.toHaveProperty("extraConfig");
    expect(buildVmConfigSpec(options({ consoleDelaySeconds: 0 }))).not.toHaveProperty("extraConfig");
    expect(() => buildVmConfigSpec(options({ vnc: { port: 6106 } }))).toThrow(/vnc.port: must be in 5900-6105/);
  });

  it("refuses VNC and console-delay keys given by hand, which would contradict the options", () => {
    expect(() => buildVmConfigSpec(options({ extraConfig: { "RemoteDisplay.vnc.port": "5999" } }))).toThrow(/extraConfig: "RemoteDisplay.vnc.port" is set by the vnc/);
    expect(() => buildVmConfigSpec(options({ extraConfig: { [CONSOLE_DELAY_KEY]: "1" } }))).toThrow(VmSpecError);
  });
});

describe("storage policy", () => {
  it("puts the policy on the VM (vmProfile) and on the root disk's deviceChange (profile), in schema order; nothing without one", () => {
    const profile = { $type: "VirtualMachineDefinedProfileSpec", profileId: "aa6d5a82-policy" };
    const spec = buildVmConfigSpec(options({ storagePolicyId: "aa6d5a82-policy", cdromIso: "[ds1] _base/iso/iso.iso" }));
    expect(spec.vmProfile).toEqual([profile]);
    expect(device(spec, "VirtualDisk").profile).toEqual([profile]);
    // Only the disk: the CD-ROM and the controller are not storage.
    expect(changes(spec).filter((c) => c.profile !== undefined)).toHaveLength(1);
    const xml = envelope(spec);
    expect(xml).toContain(`<vmProfile xsi:type="VirtualMachineDefinedProfileSpec"><profileId>aa6d5a82-policy</profileId></vmProfile>`);
    // VirtualDeviceConfigSpec: operation, fileOperation, device, profile; the config spec's vmProfile after extraConfig.
    const disk = xml.slice(xml.indexOf(`<device xsi:type="VirtualDisk">`));
    expect(disk.indexOf("</device>")).toBeLessThan(disk.indexOf(`<profile xsi:type="VirtualMachineDefinedProfileSpec">`));
    expect(xml.lastIndexOf("<deviceChange>")).toBeLessThan(xml.indexOf("<vmProfile"));

    const none = buildVmConfigSpec(options());
    expect(none).not.toHaveProperty("vmProfile");
    expect(changes(none).some((c) => "profile" in c)).toBe(false);
  });
});

describe("plannedDevices", () => {
  it("gives each device a distinct negative key and the spec uses exactly those", () => {
    const o = options({
      cdromIso: "[ds1] x.iso",
      rootDisk: { kind: "blank", capacityKb: 1024 },
      nics: [{ backing: { kind: "standard", networkName: "a" } }, { backing: { kind: "standard", networkName: "b" }, model: "e1000" }],
      serialPort: { serviceUri: "telnet://h:1" },
    });
    const plan = plannedDevices(o);
    expect(plan.map((p) => p.role)).toEqual(["controller", "disk", "cdrom", "nic0", "nic1", "serial"]);
    expect(new Set(plan.map((p) => p.key)).size).toBe(plan.length);
    expect(plan.every((p) => p.key < 0)).toBe(true);
    expect(changes(buildVmConfigSpec(o)).map((c) => [c.device.$type, c.device.key])).toEqual(plan.map((p) => [p.type, p.key]));
  });
});

// ---------------------------------------------------------------------------
// Against the simulator (schema order strict): one CreateVM_Task, read back.

const Hardware = z.object({
  "config.hardware.device": arrayOf(
    dataObject({
      $type: str,
      key: int,
      controllerKey: int.optional(),
      unitNumber: int.optional(),
      busNumber: int.optional(),
      capacityInKB: int.optional(),
      addressType: str.optional(),
      macAddress: str.optional(),
      backing: dataObject({
        $type: str.optional(),
        fileName: str.optional(),
        deviceName: str.optional(),
        network: moRef.optional(),
        parent: dataObject({ fileName: str }).optional(),
        serviceURI: str.optional(),
        direction: str.optional(),
      }).optional(),
    }),
  ),
  "config.extraConfig": arrayOf(dataObject({ key: str, value: z.unknown() })),
});

describe("CreateVM_Task with a built spec", () => {
  let sim: Vcsim;
  let client: VimClient;
  let dc: Datacenter;
  let cluster: Cluster;

  beforeAll(async () => {
    sim = await startVcsim({ schemaOrder: "strict", clusters: 1, hosts: 1 });
    client = await VimClient.connect(simOptions(sim));
    dc = await getDatacenter(client);
    cluster = await getCluster(client, dc, sim.info.inventory.datacenters[0]!.clusters[0]!.name);
  });
  afterAll(async () => {
    await client?.close();
    await sim?.stop();
  });

  it("makes the VM with the LSI Logic controller, the new disk on it at unit 0, the NIC on VM Network and the extraConfig", async () => {
    const network = await findNetwork(client, dc, "VM Network");
    expect(network).toBeDefined();
    const o = options({
      name: "spec-vm",
      datastore: "LocalDS_0",
      guestId: "otherGuest",
      numCpus: 1,
      memoryMb: 64,
      adapterType: "lsiLogic",
      rootDisk: { kind: "blank", capacityKb: 2048 },
      nics: [{ backing: { kind: "standard", networkName: "VM Network", network: network! }, macAddress: "00:50:56:01:02:03" }],
      vnc: { port: 5905 },
    });
    const vm = moRef.parse(await runTask(client, "CreateVM_Task", dc.vmFolder, { config: buildVmConfigSpec(o), pool: cluster.resourcePool }));
    const hw = await new PropertyCollector(client).get(vm, Hardware);
    const devices = hw["config.hardware.device"];
    const keys = matchDevices(plannedDevices(o), devices);
    const byKey = (k: number | undefined) => devices.find((d) => d.key === k);

    const ctl = byKey(keys.get("controller"));
    expect(ctl).toMatchObject({ $type: "VirtualLsiLogicController", busNumber: 0 });
    expect(ctl!.key).toBeGreaterThan(0);

    const disk = byKey(keys.get("disk"));
    expect(disk).toMatchObject({ $type: "VirtualDisk", controllerKey: ctl!.key, unitNumber: 0, capacityInKB: 2048 });
    expect(disk!.backing).toMatchObject({ $type: "VirtualDiskFlatVer2BackingInfo", fileName: "[LocalDS_0] spec-vm/spec-vm.vmdk" });

    const nic = byKey(keys.get("nic0"));
    expect(nic).toMatchObject({ $type: "VirtualVmxnet3", addressType: "manual", macAddress: "00:50:56:01:02:03" });
    expect(nic!.backing).toMatchObject({ $type: "VirtualEthernetCardNetworkBackingInfo", deviceName: "VM Network" });
    expect(nic!.backing!.network!.equals(network!)).toBe(true);

    const extra = new Map(hw["config.extraConfig"].map((e) => [e.key, e.value]));
    expect(extra.get("RemoteDisplay.vnc.port")).toBe("5905");
    expect(extra.get("RemoteDisplay.vnc.enabled")).toBe("true");
  });

  it("makes a linked clone on a paravirtual controller whose disk names the cached base as parent, with the ISO and the serial port", async () => {
    const base = "[LocalDS_0] _base/img/img.vmdk";
    await makeDirectory(client, dc, DatastorePath.parse("[LocalDS_0] _base/img"), { createParents: true });
    await createDisk(client, dc, base, 4096, "thin");
    const o = options({
      name: "spec-linked",
      datastore: "LocalDS_0",
      guestId: "otherGuest",
      numCpus: 1,
      memoryMb: 64,
      adapterType: "paraVirtual",
      rootDisk: { kind: "linkedClone", base, capacityKb: 4096 },
      cdromIso: "[LocalDS_0] _base/iso1/iso1.iso",
      serialPort: { serviceUri: "telnet://10.0.0.5:9000", proxyUri: "telnets://proxy:13370" },
    });
    const vm = moRef.parse(await runTask(client, "CreateVM_Task", dc.vmFolder, { config: buildVmConfigSpec(o), pool: cluster.resourcePool }));
    const devices = (await new PropertyCollector(client).get(vm, Hardware))["config.hardware.device"];
    const keys = matchDevices(plannedDevices(o), devices);
    const byKey = (k: number | undefined) => devices.find((d) => d.key === k);

    const ctl = byKey(keys.get("controller"));
    expect(ctl).toMatchObject({ $type: "ParaVirtualSCSIController", busNumber: 0 });
    const disk = byKey(keys.get("disk"));
    expect(disk).toMatchObject({ controllerKey: ctl!.key, unitNumber: 0 });
    expect(disk!.backing).toMatchObject({ fileName: "[LocalDS_0] spec-linked/spec-linked.vmdk", parent: { fileName: base } });
    expect(byKey(keys.get("cdrom"))).toMatchObject({ $type: "VirtualCdrom", controllerKey: 200, unitNumber: 0 });
    expect(byKey(keys.get("serial"))!.backing).toMatchObject({ serviceURI: "telnet://10.0.0.5:9000", direction: "server" });
  });
});
