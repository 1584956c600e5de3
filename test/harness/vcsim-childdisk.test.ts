// A child (delta) disk added with a backing `parent`, as Nova's linked clone makes it,
// on the simulator as vCenter makes it: the parent must exist, the child is a real
// vmfsSparse delta in the VM's folder, the chain reads back, and Destroy_Task takes
// the parent with it only when no other VM uses it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import { VimFault } from "../../provider/vsphere/errors.js";
import { getCluster, getDatacenter, type Cluster, type Datacenter } from "../../provider/vsphere/inventory.js";
import { moRef } from "../../provider/vsphere/schema.js";
import { MoRef } from "../../provider/vsphere/soap/xml.js";
import { runTask } from "../../provider/vsphere/task.js";
import { simOptions } from "../support/clients.js";
import { asArray, toMoRef, type Parsed } from "../support/raw-soap.js";
import { rejection } from "../support/rejection.js";
import { addDisk, createVm } from "../support/vms.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";
import { DatastoreHarness } from "./datastore-support.js";
import { diskAdd } from "../support/vms.js";

let sim: Vcsim;
let ds: DatastoreHarness;
let client: VimClient;
let dc: Datacenter;
let cluster: Cluster;
const DS = "LocalDS_0";
/** The cached base disk: a real flat disk (descriptor with a CID, and its -flat extent). */
const BASE = "cache_base/img/img.vmdk";

beforeAll(async () => {
  sim = await startVcsim({ clusters: 1, hosts: 1 });
  ds = await DatastoreHarness.open(sim);
  client = await VimClient.connect(simOptions(sim));
  dc = await getDatacenter(client);
  cluster = await getCluster(client, dc, sim.info.inventory.datacenters[0]!.clusters[0]!.name);
  await ds.mkdir("cache_base/img");
  const made = await ds.createDisk(BASE, 4096);
  expect(made.state).toBe("success");
});
afterAll(async () => {
  await client?.close();
  await sim?.stop();
});

const parentOf = (file: string) => ({ fileName: `[${DS}] ${file}`, diskMode: "persistent" });
const text = async (name: string) => (await ds.read(name)).toString("utf8");
const descriptorValue = (descriptor: string, key: string) => new RegExp(`^${key}\\s*=\\s*"?([^"\\n]*)"?`, "m").exec(descriptor)?.[1];

/** A VM made with CreateVM_Task whose config.deviceChange adds a delta disk on `parent`, with `fileName` ("" = vCenter's default). */
async function createLinkedVm(name: string, parent: string, fileName = ""): Promise<MoRef> {
  return moRef.parse(
    await runTask(client, "CreateVM_Task", dc.vmFolder, {
      config: {
        name,
        guestId: "otherGuest",
        files: { vmPathName: `[${DS}]` },
        numCPUs: 1,
        memoryMB: 64,
        deviceChange: [diskAdd(fileName, parentOf(parent), 4096)],
      },
      pool: cluster.resourcePool,
    }),
  );
}

async function vmProps(vm: MoRef): Promise<Parsed> {
  return ds.soap.properties(ds.sc, { type: vm.type, value: vm.value }, ["config.hardware.device", "layoutEx.file", "layoutEx.disk"]);
}

/** The items of an ArrayOf... value as the raw client parses it ({ VirtualDevice: [...] }). */
function items(value: unknown): Parsed[] {
  if (value === undefined || value === null || typeof value !== "object") return [];
  const key = Object.keys(value).find((k) => !k.startsWith("@"));
  return key ? asArray((value as Parsed)[key] as Parsed | Parsed[]) : [];
}

function diskBacking(props: Parsed): Parsed {
  const disk = items(props["config.hardware.device"]).find((d) => d["@_type"] === "VirtualDisk");
  return disk!.backing as Parsed;
}

async function vmNames(): Promise<string[]> {
  return (await ds.soap.retrieveAll(ds.sc, "VirtualMachine", ["name"])).map((v) => String(v.name));
}

describe("a disk added with a parent backing", () => {
  it("fails the task with InvalidDeviceSpec on backing.parent.fileName when the parent is missing, and leaves no VM", async () => {
    const err = await rejection(createLinkedVm("no-parent", "cache_base/missing/missing.vmdk"));
    expect(err).toBeInstanceOf(VimFault);
    const fault = err as VimFault;
    expect(fault.faultName).toBe("InvalidDeviceSpec");
    expect(fault.detail.property).toBe("virtualDeviceSpec.device.backing.parent.fileName");
    expect(String(fault.detail.deviceIndex)).toBe("0");
    // vCenter's words (the simulator's encoder writes the quotes as &#39;, which the client decodes).
    expect(fault.serverMessage).toBe("Invalid configuration for device '0'.");
    expect(await vmNames()).not.toContain("no-parent");

    // ReconfigVM_Task the same; the VM keeps no disk.
    const vm = await createVm(client, dc, cluster, "no-parent-reconfig", DS);
    const err2 = (await rejection(addDisk(client, vm, "", parentOf("cache_base/missing/missing.vmdk")))) as VimFault;
    expect(err2.faultName).toBe("InvalidDeviceSpec");
    expect(err2.detail.property).toBe("virtualDeviceSpec.device.backing.parent.fileName");
    expect(items((await vmProps(vm))["layoutEx.disk"])).toEqual([]);
  });

  it("gets its own vmfsSparse delta at vCenter's default <vm>/<vm>.vmdk: parentCID and parentFileNameHint name the parent, a -delta extent, no copy of the data", async () => {
    await createLinkedVm("linked1", BASE);
    const child = await text("linked1/linked1.vmdk");
    const base = await text(BASE);
    expect(descriptorValue(child, "createType")).toBe("vmfsSparse");
    expect(descriptorValue(child, "parentCID")).toBe(descriptorValue(base, "CID"));
    expect(descriptorValue(child, "CID")).toMatch(/^[0-9a-f]{8}$/);
    expect(descriptorValue(child, "parentFileNameHint")).toBe(`/vmfs/volumes/${DS}/${BASE}`);
    // One extent: the delta, as large as the parent (4096 KB = 8192 sectors).
    expect(child).toMatch(/^RW 8192 VMFSSPARSE "linked1-delta\.vmdk"$/m);
    const delta = await ds.read("linked1/linked1-delta.vmdk");
    expect(delta.subarray(0, 4).toString("latin1")).toBe("COWD");
    expect(delta.length).toBeLessThan(8192 * 512);
    expect(await ds.status("linked1/linked1-flat.vmdk")).toBe(404);
    // The parent is untouched.
    expect(await text(BASE)).toBe(base);
  });

  it("is written at the fileName given, through ReconfigVM_Task too", async () => {
    const vm = await createVm(client, dc, cluster, "linked2", DS);
    await addDisk(client, vm, `[${DS}] linked2/root.vmdk`, parentOf(BASE));
    const child = await text("linked2/root.vmdk");
    expect(descriptorValue(child, "createType")).toBe("vmfsSparse");
    expect(descriptorValue(child, "parentCID")).toBe(descriptorValue(await text(BASE), "CID"));
    expect(child).toMatch(/VMFSSPARSE "root-delta\.vmdk"/);
    expect(await ds.status("linked2/root-delta.vmdk")).toBe(200);
    expect(await ds.status("linked2/root-flat.vmdk")).toBe(404);
  });

  it("reads back with its parent in the backing chain, and layoutEx lists the child's and the parent's files", async () => {
    const [vm] = (await ds.soap.retrieveAll(ds.sc, "VirtualMachine", ["name"])).filter((v) => v.name === "linked1");
    const props = await vmProps(vm!.obj as MoRef);
    const backing = diskBacking(props);
    expect(backing.fileName).toBe(`[${DS}] linked1/linked1.vmdk`);
    expect(backing.parent.fileName).toBe(`[${DS}] ${BASE}`);
    const files = items(props["layoutEx.file"]).map((f) => [String(f.name), String(f.type)]);
    expect(files).toEqual(
      expect.arrayContaining([
        [`[${DS}] linked1/linked1.vmdk`, "diskDescriptor"],
        [`[${DS}] linked1/linked1-delta.vmdk`, "diskExtent"],
        [`[${DS}] ${BASE}`, "diskDescriptor"],
        [`[${DS}] cache_base/img/img-flat.vmdk`, "diskExtent"],
      ]),
    );
    expect(files.map(([n]) => n)).not.toContain(`[${DS}] linked1/linked1-flat.vmdk`);
    // The chain: the child's unit first, then the parent's.
    const [disk] = items(props["layoutEx.disk"]);
    expect(asArray(disk!.chain as Parsed | Parsed[])).toHaveLength(2);
  });

  it("deleting the VM's folder leaves the parent alone", async () => {
    const vm = await createLinkedVm("linked3", BASE);
    await client.invoke("UnregisterVM", vm, {});
    const info = await ds.runTask("DeleteDatastoreFile_Task", toMoRef(ds.sc.fileManager), ds.diskArgs("linked3"));
    expect(info.state).toBe("success");
    expect(await ds.status("linked3/linked3.vmdk")).toBe(404);
    expect(await ds.status(BASE)).toBe(200);
    expect(await ds.status("cache_base/img/img-flat.vmdk")).toBe(200);
  });

  it("Destroy_Task deletes the child, and the parent only once no other VM's chain uses it, as vCenter does", async () => {
    await ds.mkdir("cache_base/solo");
    expect((await ds.createDisk("cache_base/solo/solo.vmdk", 2048)).state).toBe("success");
    const a = await createLinkedVm("solo-a", "cache_base/solo/solo.vmdk");
    const b = await createLinkedVm("solo-b", "cache_base/solo/solo.vmdk");

    await runTask(client, "Destroy_Task", a);
    expect(await ds.status("solo-a/solo-a.vmdk")).toBe(404);
    expect(await ds.status("cache_base/solo/solo.vmdk")).toBe(200); // solo-b still uses it

    await runTask(client, "Destroy_Task", b);
    expect(await ds.status("solo-b/solo-b.vmdk")).toBe(404);
    expect(await ds.status("cache_base/solo/solo.vmdk")).toBe(404);
    expect(await ds.status("cache_base/solo/solo-flat.vmdk")).toBe(404);
  });
});
