// Instance end to end: program -> serialized dynamic provider -> the real dynamic-provider
// process -> driver -> the simulator, read back from vCenter (controller, disk backing
// chain with its parent in the image cache, NIC backings, extraConfig, serial port URI,
// VNC ports), through create, update in place, refresh (drift, a VM deleted outside),
// import, failures under injected faults, concurrency, and destroy.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import { DatastorePath, makeDirectory } from "../../provider/vsphere/datastore.js";
import { getCluster, getDatacenter, listVms, type Cluster, type Datacenter } from "../../provider/vsphere/inventory.js";
import { MoRef } from "../../provider/vsphere/soap/xml.js";
import { runTask } from "../../provider/vsphere/task.js";
import { removeVm } from "../../provider/vsphere/vm-lifecycle.js";
import { readVm } from "../../provider/vsphere/vm-read.js";
import type { VmView } from "../../provider/vsphere/vm-view.js";
import { simOptions } from "../support/clients.js";
import { ImageDir } from "../support/images.js";
import { PROJECT_ROOT } from "../vcsim/build.mjs";
import { startVcsim, type Vcsim } from "../vcsim/index.js";
import { DynamicProviderProcess } from "./provider-process.js";
import type { HarnessStack } from "./index.js";
import { eventOf as ev, folderNames, ok, outs, resource, specStack } from "./state-helpers.js";

const PASSWORD = "pw-Instance-7e2a";
const SERIAL = "telnet://serial.example.net:7000";
const SERIAL_PROXY = "telnet://proxy.example.net:13370";
let sim: Vcsim;
let client: VimClient;
let dc: Datacenter;
let cluster: Cluster;
let dir: string;
let images: ImageDir;
let DS: string[];
let sparse: string;
let iso: string;

beforeAll(async () => {
  sim = await startVcsim({ tls: true, clusters: 1, hosts: 2, datastores: 2, password: PASSWORD });
  client = await VimClient.connect(simOptions(sim));
  dc = await getDatacenter(client);
  cluster = await getCluster(client, dc, "DC0_C0");
  DS = sim.info.inventory.datacenters[0]!.datastores.filter((d) => d.startsWith("LocalDS_")).sort();
  dir = mkdtempSync(join(tmpdir(), "instance-harness-"));
  images = await ImageDir.create();
  sparse = await images.sparseVmdk("base.vmdk", { adapter: "lsilogic", sizeMiB: 16 });
  iso = await images.iso("installer.iso");
});
afterAll(async () => {
  await client?.close();
  await sim?.stop();
  await images?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

type Spec = { images?: Record<string, unknown>; portGroups?: Record<string, unknown>; instances?: Record<string, Record<string, unknown>> };

const stack = (name: string, spec: Spec, config: Record<string, string> = {}) =>
  specStack(sim, { dir, name, program: "test/engine/programs/instances.ts", password: PASSWORD, specKey: "insttest:spec", cachePrefix: name }, spec, config);


async function vmOf(s: HarnessStack, name: string): Promise<VmView> {
  const view = await readVm(client, new MoRef("VirtualMachine", outs(s, name).vmId));
  if (!view) throw new Error(`VM of ${name} is gone`);
  return view;
}

/** Names in a datastore folder ([] when it does not exist). */
const names = async (path: DatastorePath) => (await folderNames(client, dc, path)) ?? [];

async function vmNames(): Promise<string[]> {
  return (await listVms(client, dc.vmFolder)).map((v) => v.name);
}

describe("Instance", () => {
  it("boots an Image's linked clones on a PortGroup: one CreateVM_Task each, read back from vCenter", async () => {
    const s = stack(
      "three",
      {
        images: { img: { source: sparse, osType: "ubuntu64Guest" } },
        portGroups: { net: { name: "inst-net", vlanId: 10 }, dnet: { name: "inst-dv", kind: "distributed", switch: "DVS0", vlanId: 20 } },
        instances: {
          web: { image: "img", cpus: 1, memoryMb: 128, networks: [{ portGroup: "net" }], metadata: { role: "web" } },
          db: { image: "img", cpus: 2, coresPerSocket: 2, memoryMb: 256, rootDiskGb: 1, networks: [{ portGroup: "net", model: "e1000", macAddress: "00:50:56:3f:00:01" }] },
          batch: { image: "img", cpus: 1, memoryMb: 64, powerState: "off", displayName: "Batch worker", networks: [{ portGroup: "net" }, { portGroup: "dnet", model: "e1000e" }] },
        },
      },
      { "vmware:serialPortServiceUri": SERIAL, "vmware:serialPortProxyUri": SERIAL_PROXY, "vmware:consoleDelaySeconds": "2" },
    );
    // A preview of the new stack: the Image's and PortGroup's outputs are unknown; check lets them be, and nothing is made.
    const preview = ok(await s.preview());
    for (const n of ["img", "net", "dnet", "web", "db", "batch"]) expect(ev(preview, n)).toMatchObject({ op: "create", preview: true });
    expect(await vmNames()).toEqual(expect.not.arrayContaining([expect.stringMatching(/^[0-9a-f]{8}-/)]));
    const up = ok(await s.up());
    for (const n of ["web", "db", "batch"]) expect(ev(up, n)?.op).toBe("create");
    const imageId = outs(s, "img").imageId as string;

    const web = await vmOf(s, "web");
    const db = await vmOf(s, "db");
    const batch = await vmOf(s, "batch");
    // Identity: the VM's name is its instance uuid, the resource id.
    expect(web.name).toBe(resource(s, "web").id);
    expect(web.instanceUuid).toBe(resource(s, "web").id);
    expect(web.annotation.split("\n")[0]).toBe("web");
    expect(web.annotation).toContain("urn:pulumi:");
    expect(batch.annotation.split("\n")[0]).toBe("Batch worker");
    expect(web.guestId).toBe("ubuntu64Guest");
    // The controller of the image's adapter type; the disk a delta on the cached base (db: on the sized base).
    for (const v of [web, db, batch]) {
      expect(v.controllers.map((c) => c.type)).toContain("VirtualLsiLogicController");
      expect(v.disks).toHaveLength(1);
      expect(v.disks[0]!.controllerType).toBe("VirtualLsiLogicController");
    }
    const ds = DatastorePath.parse(web.disks[0]!.parents[0]!).datastore;
    expect(web.disks[0]!.parents[0]).toBe(`[${ds}] three_base/${imageId}/${imageId}.vmdk`);
    expect(web.disks[0]!.fileName).toMatch(new RegExp(`^\\[${ds}\\] ${web.name}/`));
    const dbDs = DatastorePath.parse(db.disks[0]!.parents[0]!).datastore;
    expect(db.disks[0]!.parents[0]).toBe(`[${dbDs}] three_base/${imageId}/${imageId}.1.vmdk`);
    expect(db.disks[0]!.capacityKb).toBe(1024 * 1024);
    expect(outs(s, "db").rootDisk.parents[0]).toBe(db.disks[0]!.parents[0]);
    expect(outs(s, "db").linkedCloneDisk).toBe(true);
    // Flavor.
    expect([db.cpus, db.coresPerSocket, db.memoryMb]).toEqual([2, 2, 256]);
    // NICs: the PortGroup's network, models, a fixed MAC; vCenter's generated ones in the outputs.
    expect(web.nics.map((n) => [n.model, n.backing])).toEqual([["vmxnet3", expect.objectContaining({ kind: "standard", networkName: "inst-net" })]]);
    expect(db.nics[0]).toMatchObject({ model: "e1000", macAddress: "00:50:56:3f:00:01", addressType: "manual" });
    // A distributed PortGroup: the NIC's port on its switch and key.
    expect(batch.nics.map((n) => [n.model, n.backing])).toEqual([
      ["vmxnet3", expect.objectContaining({ kind: "standard", networkName: "inst-net" })],
      ["e1000e", { kind: "distributed", switchUuid: outs(s, "dnet").switchUuid, portgroupKey: outs(s, "dnet").portgroupKey }],
    ]);
    expect(outs(s, "batch").networks[1]).toEqual({ switchUuid: outs(s, "dnet").switchUuid, portgroupKey: outs(s, "dnet").portgroupKey, model: "e1000e" });
    expect(outs(s, "web").macAddresses).toEqual([web.nics[0]!.macAddress]);
    // Serial port, console delay, metadata, Nova's extraConfig.
    expect(web.serialPorts[0]).toMatchObject({ serviceUri: SERIAL, proxyUri: SERIAL_PROXY, direction: "server" });
    expect(web.extraConfig["keyboard.typematicMinDelay"]).toBe("2000000");
    expect(web.metadata).toEqual({ role: "web" });
    expect(web.extraConfig["nvp.vm-uuid"]).toBe(web.instanceUuid);
    // Power and consoles: VNC ports unique; the host named.
    expect([web.powerState, db.powerState, batch.powerState]).toEqual(["poweredOn", "poweredOn", "poweredOff"]);
    const ports = [web, db, batch].map((v) => v.vncPort);
    expect(new Set(ports).size).toBe(3);
    for (const p of ports) expect(p).toBeGreaterThanOrEqual(5900);
    expect(outs(s, "web").vncPort).toBe(web.vncPort);
    expect(outs(s, "web").host).toBe(web.hostName);
    expect(outs(s, "web").vncHost).toBe(web.hostName);

    // Nothing to change: a second up is all "same".
    const again = ok(await s.up());
    for (const n of ["web", "db", "batch"]) expect(ev(again, n)?.op).toBe("same");

    // Destroy: the VMs and their folders go; the cached base goes with its Image (nothing uses it now).
    ok(await s.destroy());
    const left = await vmNames();
    for (const v of [web, db, batch]) {
      expect(left).not.toContain(v.name);
      expect(await names(new DatastorePath(DatastorePath.parse(v.vmxPath).datastore, v.name))).toEqual([]);
    }
  });

  it("updates in place — flavor, NICs, metadata, name, power — with a preview that says what changes and which need a power cycle; refresh shows drift and a VM deleted outside", async () => {
    const base = { image: "img", cpus: 1, memoryMb: 128, networks: [{ portGroup: "VM Network" }] };
    const spec = (web: Record<string, unknown>, db: Record<string, unknown> = {}) => ({
      images: { img: { source: sparse } },
      instances: { web: { ...base, ...web }, db: { ...base, cpuHotAdd: true, memoryHotAdd: true, ...db } },
    });
    const s = stack("upd", spec({}));
    ok(await s.up());
    const ids = { web: resource(s, "web").id, db: resource(s, "db").id };
    const vms = { web: outs(s, "web").vmId, db: outs(s, "db").vmId };

    // web: hot add is off, so more CPUs need a power cycle; db: hot add is on, so none.
    s.set(spec({ cpus: 2, memoryMb: 256, metadata: { tier: "front" }, displayName: "Web server", networks: [{ portGroup: "VM Network", model: "e1000" }, { portGroup: "VM Network" }] }, { cpus: 2, memoryMb: 256 }));
    const preview = ok(await s.preview());
    const pw = ev(preview, "web")!;
    expect(pw.op).toBe("update");
    expect(pw.detailedDiff).toMatchObject({
      cpus: { kind: "UPDATE" },
      memoryMb: { kind: "UPDATE" },
      metadata: { kind: "UPDATE" },
      displayName: { kind: "UPDATE" },
      "networks[0].model": { kind: "UPDATE" },
      "networks[1]": { kind: "ADD" },
      powerCycle: { kind: "ADD" },
    });
    expect(ev(preview, "db")!.detailedDiff).toEqual({ cpus: { kind: "UPDATE", inputDiff: true }, memoryMb: { kind: "UPDATE", inputDiff: true } });
    // Previews change nothing.
    expect((await vmOf(s, "web")).cpus).toBe(1);

    const up = ok(await s.up());
    expect(ev(up, "web")?.op).toBe("update");
    expect(ev(up, "db")?.op).toBe("update");
    expect(resource(s, "web").id).toBe(ids.web);
    expect(outs(s, "web").vmId).toBe(vms.web);
    expect(outs(s, "web").powerCycle).toEqual(expect.arrayContaining([expect.stringContaining("CPU hot add is off")]));
    const web = await vmOf(s, "web");
    expect([web.cpus, web.memoryMb, web.powerState]).toEqual([2, 256, "poweredOn"]);
    expect(web.nics.map((n) => n.model)).toEqual(["e1000", "vmxnet3"]);
    expect(web.metadata).toEqual({ tier: "front" });
    expect(web.annotation.split("\n")[0]).toBe("Web server");
    const db = await vmOf(s, "db");
    expect([db.cpus, db.memoryMb]).toEqual([2, 256]);
    expect(outs(s, "db").powerCycle).toBeUndefined();

    // Power off, then on again; and nothing to change afterwards.
    s.set(spec({ cpus: 2, memoryMb: 256, metadata: { tier: "front" }, displayName: "Web server", networks: [{ portGroup: "VM Network", model: "e1000" }, { portGroup: "VM Network" }], powerState: "off" }, { cpus: 2, memoryMb: 256 }));
    ok(await s.up());
    expect((await vmOf(s, "web")).powerState).toBe("poweredOff");
    expect(ev(ok(await s.up()), "web")?.op).toBe("same");

    // Drift: the VM changed outside (2 → 3 CPUs): refresh shows it, and the next up puts it back.
    await runTask(client, "ReconfigVM_Task", new MoRef("VirtualMachine", vms.web), { spec: { numCPUs: 3 } });
    const refresh = ok(await s.refresh());
    expect(ev(refresh, "web")?.op).toBe("drift");
    expect(outs(s, "web").cpus).toBe(3);
    const back = ok(await s.up());
    expect(ev(back, "web")?.op).toBe("update");
    expect((await vmOf(s, "web")).cpus).toBe(2);

    // A VM deleted outside leaves the state at refresh; up makes it again.
    await removeVm(client, dc, new MoRef("VirtualMachine", vms.db));
    const gone = ok(await s.refresh());
    expect(ev(gone, "db")?.op).toBe("deleted-outside");
    expect(s.state().resources.find((r) => r.name === "db")).toBeUndefined();
    const again = ok(await s.up());
    expect(ev(again, "db")?.op).toBe("create");
    expect(resource(s, "db").id).not.toBe(ids.db);

    // Root disk growth of a linked clone: consolidated into a disk of its own, grown (as Nova's resize); the cached base untouched.
    const parent = (await vmOf(s, "web")).disks[0]!.parents[0]!;
    s.set(spec({ cpus: 2, memoryMb: 256, rootDiskGb: 2 }, { cpus: 2, memoryMb: 256 }));
    const grow = ok(await s.up());
    expect(ev(grow, "web")?.op).toBe("update");
    const grown = await vmOf(s, "web");
    expect(grown.disks[0]).toMatchObject({ capacityKb: 2 * 1024 * 1024, parents: [] });
    expect(outs(s, "web").linkedCloneDisk).toBe(false);
    expect(await names(DatastorePath.parse(parent).parent)).toContain(DatastorePath.parse(parent).basename);
    // A root disk cannot shrink: check refuses, naming the property; nothing changes.
    s.set(spec({ cpus: 2, memoryMb: 256, rootDiskGb: 1 }, { cpus: 2, memoryMb: 256 }));
    const shrink = await s.preview();
    expect(ev(shrink, "web")?.failures?.[0]).toMatchObject({ property: "rootDiskGb", reason: expect.stringContaining("cannot shrink") });
    ok(await s.destroy());
    expect(await vmNames()).not.toContain(ids.web);
  });

  it("reads a VM from its id alone (instance uuid or vm id), and adopts one made outside", async () => {
    const s = stack("imp", { images: { img: { source: sparse } }, instances: { a: { image: "img", cpus: 1, memoryMb: 64, metadata: { k: "v" } } } });
    ok(await s.up());
    const r = resource(s, "a");
    const o = outs(s, "a");
    const proc = await DynamicProviderProcess.start(PROJECT_ROOT);
    try {
      await proc.configure(s.opts.config);
      for (const id of [r.id, o.vmId as string, `VirtualMachine:${o.vmId as string}`]) {
        const read = await proc.read(r.urn, id, { __provider: r.outputs.__provider }, {});
        expect(read.id).toBe(r.id);
        expect(read.props).toMatchObject({ instanceUuid: r.id, vmId: o.vmId, cpus: 1, memoryMb: 64, metadata: { k: "v" }, powerState: "on", vncPort: o.vncPort, host: o.host });
      }
      expect((await proc.read(r.urn, "5012a3b4-c5d6-47e8-89ab-000000000000", { __provider: r.outputs.__provider }, {})).id).toBe("");
    } finally {
      await proc.stop();
    }

    // Adopt: a VM of the first stack taken over by a second one, brought to its inputs.
    ok(await s.destroy());
    const first = stack("imp", { images: { img: { source: sparse } }, instances: { a: { image: "img", cpus: 1, memoryMb: 64 } } });
    ok(await first.up());
    const made = outs(first, "a");
    // The first stack forgets it (as if it were made by hand): its state file goes.
    rmSync(first.opts.stateFile);
    const adopter = stack("adopt", { instances: { taken: { adopt: made.vmId, cpus: 2, memoryMb: 128, metadata: { owner: "adopter" }, powerState: "off" } } });
    const up = ok(await adopter.up());
    expect(ev(up, "taken")?.op).toBe("create");
    expect(resource(adopter, "taken").id).toBe(made.instanceUuid);
    const v = await vmOf(adopter, "taken");
    expect(v.vm.value).toBe(made.vmId);
    expect([v.cpus, v.memoryMb, v.powerState, v.metadata]).toEqual([2, 128, "poweredOff", { owner: "adopter" }]);
    // Its disk is kept as it was: a linked clone of the first stack's image.
    expect(v.disks[0]!.parents[0]).toContain("imp_base/");
    ok(await adopter.destroy());
    expect(await vmNames()).not.toContain(made.name);
  });

  it("boots a full copy (the image's linkedClone false), and an ISO on a CD-ROM beside a blank root disk", async () => {
    const s = stack("kinds", {
      images: { disk: { source: sparse, linkedClone: false }, cd: { source: iso } },
      instances: {
        full: { image: "disk", cpus: 1, memoryMb: 64, rootDiskGb: 1, guestId: "rhel8_64Guest", cpuReservationMhz: 500, cpuLimitMhz: 2000, memoryShares: "high", memoryReservationMb: 32 },
        live: { image: "cd", cpus: 1, memoryMb: 64, rootDiskGb: 2, powerState: "suspended", cpuShares: 1500 },
      },
    });
    ok(await s.up());
    const full = await vmOf(s, "full");
    expect(full.disks[0]!.parents).toEqual([]);
    expect(full.disks[0]!.fileName).toBe(`[${DatastorePath.parse(full.vmxPath).datastore}] ${full.name}/${full.name}.vmdk`);
    expect(full.disks[0]!.capacityKb).toBe(1024 * 1024);
    expect(outs(s, "full").linkedCloneDisk).toBe(false);
    // The guest id given over the image's; reservations, limits and shares as set (the flavor's quota:* extra specs).
    expect(full.guestId).toBe("rhel8_64Guest");
    expect(full.cpuAllocation).toMatchObject({ reservation: 500, limit: 2000 });
    expect(full.memoryAllocation).toMatchObject({ reservation: 32, shares: { level: "high" } });
    const live = await vmOf(s, "live");
    const isoId = outs(s, "cd").imageId as string;
    expect(live.cdroms.map((c) => c.iso)).toEqual([`[${DatastorePath.parse(live.cdroms[0]!.iso!).datastore}] kinds_base/${isoId}/${isoId}.iso`]);
    expect(live.disks[0]).toMatchObject({ parents: [], capacityKb: 2 * 1024 * 1024, thinProvisioned: true });
    expect(live.powerState).toBe("suspended");
    expect(live.cpuAllocation.shares).toEqual({ level: "custom", count: 1500 });
    // Nothing to change afterwards: the state reads back as the inputs say.
    const again = ok(await s.up());
    expect([ev(again, "full")?.op, ev(again, "live")?.op]).toEqual(["same", "same"]);
    ok(await s.destroy());
    for (const ds of DS) expect(await names(new DatastorePath(ds, full.name))).toEqual([]);
  });

  it("refuses bad input at preview, naming the property, the value and what is accepted", async () => {
    const s = stack("bad", {
      images: { img: { source: sparse } },
      instances: {
        typo: { image: "img", cpus: 1, memoryMb: 64, guestId: "ubuntu64guest" },
        cores: { image: "img", cpus: 3, coresPerSocket: 2, memoryMb: 64 },
        missing: { imageId: "0123456789abcdef0123456789abcdef", cpus: 1, memoryMb: 64 },
        policy: { image: "img", cpus: 1, memoryMb: 64, storagePolicy: "gold" },
        none: { cpus: 1, memoryMb: 64 },
        nic: { image: "img", cpus: 1, memoryMb: 64, networks: [{ portGroup: "VM Network", model: "pcnet32" }] },
      },
    });
    const r = await s.preview();
    const failed = (name: string) => ev(r, name)?.failures ?? [];
    expect(failed("typo")).toEqual([expect.objectContaining({ property: "guestId", reason: expect.stringContaining('"ubuntu64Guest"') })]);
    expect(failed("cores")).toEqual([expect.objectContaining({ property: "coresPerSocket", reason: expect.stringContaining("must divide cpus (3)") })]);
    expect(failed("missing")).toEqual([expect.objectContaining({ property: "imageId", reason: expect.stringContaining("is not cached on any datastore") })]);
    expect(failed("policy")).toEqual([expect.objectContaining({ property: "storagePolicy", reason: expect.stringContaining("vmware:pbmEnabled") })]);
    expect(failed("none")).toEqual([expect.objectContaining({ property: "image" })]);
    expect(failed("nic")[0]).toMatchObject({ property: "networks.0.model" });
    expect(await vmNames()).toEqual(expect.not.arrayContaining([expect.stringMatching(/^bad/)]));
  });

  it("places a VM by storage policy with vmware:pbmEnabled: only a compatible datastore, the policy on the VM's spec", async () => {
    const s = stack("pbm", { images: { img: { source: sparse } }, instances: { p: { image: "img", cpus: 1, memoryMb: 64, storagePolicy: "vSAN Default Storage Policy" } } }, { "vmware:pbmEnabled": "true" });
    // The image goes to the datastore with most free space; the policy allows only the other one.
    ok(await s.up({ ...s.opts.config, "insttest:spec": JSON.stringify({ images: { img: { source: sparse } } }) }));
    const cachedOn = Object.keys(outs(s, "img").cached)[0]!;
    const other = DS.find((d) => d !== cachedOn)!;
    const policyId = "aa6d5a82-1c88-45da-85d3-3d74b91a5bad";
    await sim.control.markPolicyIncompatible(policyId, [cachedOn]);
    try {
      ok(await s.up());
      const v = await vmOf(s, "p");
      expect(DatastorePath.parse(v.vmxPath).datastore).toBe(other);
      // The image was copied to the compatible datastore's cache, and the clone's parent is that copy.
      expect(v.disks[0]!.parents[0]).toMatch(new RegExp(`^\\[${other}\\] pbm_base/`));
      expect(outs(s, "p").storagePolicyId).toBe(policyId);
      const typo = await s.preview({ ...s.opts.config, "insttest:spec": JSON.stringify({ images: { img: { source: sparse } }, instances: { p: { image: "img", cpus: 1, memoryMb: 64 }, q: { image: "img", cpus: 1, memoryMb: 64, storagePolicy: "vSAN Default Storage Polcy" } } }) });
      expect(ev(typo, "q")?.failures?.[0]).toMatchObject({ property: "storagePolicy", reason: expect.stringContaining("vSAN Default Storage Policy") });
    } finally {
      await sim.control.clearPolicyMarks();
      ok(await s.destroy());
    }
  });

  it("goes to a named resource pool and VM folder; with vmware:integrationBridge every NIC is on that bridge (NSX mode)", async () => {
    const pool = await client.invoke("CreateResourcePool", cluster.resourcePool, {
      name: "tenants",
      spec: {
        cpuAllocation: { reservation: 0, expandableReservation: true, limit: -1, shares: { shares: 0, level: "normal" } },
        memoryAllocation: { reservation: 0, expandableReservation: true, limit: -1, shares: { shares: 0, level: "normal" } },
      },
    });
    const parent = await client.invoke("CreateFolder", dc.vmFolder, { name: "pulumi" });
    const folder = await client.invoke("CreateFolder", parent as MoRef, { name: "web" });
    const s = stack(
      "place",
      {
        images: { img: { source: sparse } },
        portGroups: { bridge: { name: "br-int" } },
        instances: { p: { image: "img", cpus: 1, memoryMb: 64, resourcePool: "tenants", folder: "pulumi/web", networks: [{ portGroup: "VM Network" }, { portGroup: "bridge" }] } },
      },
      { "vmware:integrationBridge": "br-int" },
    );
    ok(await s.up());
    const v = await vmOf(s, "p");
    expect(v.resourcePool?.value).toBe((pool as MoRef).value);
    const props = await client.invoke("RetrievePropertiesEx", client.serviceContent.propertyCollector, {
      specSet: [{ propSet: [{ type: "VirtualMachine", pathSet: ["parent"] }], objectSet: [{ obj: v.vm }] }],
      options: {},
    });
    expect(JSON.stringify(props)).toContain((folder as MoRef).value);
    expect(v.nics.map((n) => (n.backing as { networkName?: string }).networkName)).toEqual(["br-int", "br-int"]);
    // A pool that does not exist: the error names the ones there are.
    s.set({ images: { img: { source: sparse } }, portGroups: { bridge: { name: "br-int" } }, instances: { p: { image: "img", cpus: 1, memoryMb: 64, resourcePool: "tenants", folder: "pulumi/web" }, q: { image: "img", cpus: 1, memoryMb: 64, resourcePool: "tenant" } } });
    const bad = await s.preview();
    expect(ev(bad, "q")?.failures).toEqual([{ property: "resourcePool", reason: expect.stringMatching(/resource pool "tenant" not found in cluster DC0_C0 \(there are: tenants\)/) }]);
    ok(await s.destroy());
  });

  it("replaces the VM for another image or datastore: the preview says which property, the new VM is made before the old one goes", async () => {
    const other = await images.sparseVmdk("other.vmdk", { adapter: "ide", sizeMiB: 8 });
    const spec = (vm: Record<string, unknown>) => ({ images: { a: { source: sparse }, b: { source: other } }, instances: { vm: { cpus: 1, memoryMb: 64, ...vm } } });
    const s = stack("repl", spec({ image: "a", datastore: DS[0] }));
    ok(await s.up());
    const first = { id: resource(s, "vm").id, name: (await vmOf(s, "vm")).name };

    s.set(spec({ image: "b", datastore: DS[0] }));
    const preview = ok(await s.preview());
    expect(ev(preview, "vm")).toMatchObject({ op: "replace", replaces: expect.arrayContaining(["image", "imageId"]) });
    expect(ev(preview, "vm")?.detailedDiff).toMatchObject({ imageId: { kind: "UPDATE_REPLACE" } });
    const replaced = ok(await s.up());
    const ops = replaced.events.filter((e) => e.key.endsWith("::vm")).map((e) => e.op);
    expect(ops.indexOf("replace")).toBeGreaterThanOrEqual(0);
    expect(ops.indexOf("replace")).toBeLessThan(ops.indexOf("delete-replaced"));
    const second = await vmOf(s, "vm");
    expect(resource(s, "vm").id).not.toBe(first.id);
    // The new image's adapter: an IDE disk on the built-in IDE controller.
    expect(second.disks[0]!.controllerType).toBe("VirtualIDEController");
    expect(await vmNames()).not.toContain(first.name);

    s.set(spec({ image: "b", datastore: DS[1] }));
    const moved = ok(await s.preview());
    expect(ev(moved, "vm")).toMatchObject({ op: "replace", replaces: ["datastore"] });
    ok(await s.up());
    expect(DatastorePath.parse((await vmOf(s, "vm")).vmxPath).datastore).toBe(DS[1]);
    expect(await vmNames()).not.toContain(second.name);
    ok(await s.destroy());
  });

  it("a NIC on a port group the hosts do not have: vCenter's InvalidDeviceSpec named as the NIC's input, nothing left behind", async () => {
    const s = stack("nonet", { images: { img: { source: sparse } }, instances: { n: { image: "img", cpus: 1, memoryMb: 64, networks: [{ portGroup: "VM Network" }, { portGroup: "no-such-net" }] } } });
    const before = await vmNames();
    const r = await s.up();
    expect(r.errors.join("\n")).toMatch(/networks\[1\]: vCenter refused the NIC on port group "no-such-net": is it on every host of the cluster\? \(.*InvalidDeviceSpec: Invalid configuration for device '3'/);
    expect(await vmNames()).toEqual(before);
    ok(await s.destroy());
  });

  it("an image used again loses its age markers before the VM links to it (the cache sweeper's protocol)", async () => {
    const s = stack("aged", { images: { img: { source: sparse } } });
    ok(await s.up());
    const folder = DatastorePath.parse(outs(s, "img").cached[Object.keys(outs(s, "img").cached)[0]!].folder);
    const marker = folder.join("ts-2020-01-01-00-00-00");
    await makeDirectory(client, dc, marker);
    expect(await names(folder)).toContain(marker.basename);
    s.set({ images: { img: { source: sparse } }, instances: { a: { image: "img", cpus: 1, memoryMb: 64, datastore: folder.datastore } } });
    ok(await s.up());
    expect(await names(folder)).not.toContain(marker.basename);
    ok(await s.destroy());
  });
});
