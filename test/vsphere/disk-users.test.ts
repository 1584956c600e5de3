// diskUsers against a private simulator: linked clones made as Nova makes them (a
// delta disk whose backing `parent` is the cached base), a VM whose disk is the base
// itself, a two-level chain; all read in one round trip.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import { DatastorePath, makeDirectory } from "../../provider/vsphere/datastore.js";
import { diskUsage, diskUsers } from "../../provider/vsphere/disk-users.js";
import { getCluster, getDatacenter, type Cluster, type Datacenter } from "../../provider/vsphere/inventory.js";
import { MoRef } from "../../provider/vsphere/soap/xml.js";
import { runTask } from "../../provider/vsphere/task.js";
import { simOptions } from "../support/clients.js";
import { addDisk as addDiskTo, createDisk, createVm as createVmIn } from "../support/vms.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";

let sim: Vcsim;
let client: VimClient;
let dc: Datacenter;
let cluster: Cluster;
const DS = "LocalDS_0";
const base = new DatastorePath(DS, "cache_base/img1/img1.vmdk");
const other = new DatastorePath(DS, "cache_base/img2/img2.vmdk");

const createVm = (name: string) => createVmIn(client, dc, cluster, name, DS);
const addDisk = (vm: MoRef, fileName: string, parent?: Record<string, unknown>) => addDiskTo(client, vm, fileName, parent);

let plain: MoRef;
let linked: MoRef;
let deep: MoRef;

beforeAll(async () => {
  sim = await startVcsim({ clusters: 1, hosts: 1 });
  client = await VimClient.connect(simOptions(sim));
  dc = await getDatacenter(client);
  cluster = await getCluster(client, dc, sim.info.inventory.datacenters[0]!.clusters[0]!.name);
  await makeDirectory(client, dc, base.parent, { createParents: true });
  await makeDirectory(client, dc, other.parent, { createParents: true });
  // A VM whose disk is the base file itself.
  plain = await createVm("plain");
  await addDisk(plain, base.toString());
  // A linked clone: its delta's parent is the base.
  linked = await createVm("linked");
  await makeDirectory(client, dc, new DatastorePath(DS, "linked"), { createParents: true });
  await addDisk(linked, `[${DS}] linked/linked.vmdk`, { fileName: base.toString(), diskMode: "persistent" });
  // Two levels: a delta on a delta on the base (a snapshot of a linked clone).
  deep = await createVm("deep");
  await makeDirectory(client, dc, new DatastorePath(DS, "deep"), { createParents: true });
  // Its middle link must exist: vCenter refuses a disk whose parent is missing.
  await createDisk(client, dc, `[${DS}] deep/deep.vmdk`, 1024, "thin");
  await addDisk(deep, `[${DS}] deep/deep-000001.vmdk`, {
    fileName: `[${DS}] deep/deep.vmdk`,
    diskMode: "persistent",
    parent: { $type: "VirtualDiskFlatVer2BackingInfo", fileName: base.toString(), diskMode: "persistent" },
  });
});
afterAll(async () => {
  await client?.close();
  await sim?.stop();
});

const names = (users: Array<{ name: string }> | undefined) => (users ?? []).map((u) => u.name).sort();

describe("diskUsers", () => {
  it("reports every VM whose disk chain uses the base, and none for an unused one, in one round trip", async () => {
    const before = client.stats.roundTrips;
    const users = await diskUsers(client, [base, other]);
    expect(client.stats.roundTrips - before).toBe(1);

    expect([...users.keys()]).toEqual([base.toString(), other.toString()]);
    expect(names(users.get(base.toString()))).toEqual(["deep", "linked", "plain"]);
    expect(users.get(base.toString())!.find((u) => u.name === "linked")!.vm.equals(linked)).toBe(true);
    expect(users.get(base.toString())!.find((u) => u.name === "plain")!.vm.equals(plain)).toBe(true);
    expect(users.get(other.toString())).toEqual([]);
  });

  it("matches a path however it is spelled, and a middle link of a chain", async () => {
    const users = await diskUsers(client, [`[${DS}] cache_base//img1/./img1.vmdk`, `[${DS}] deep/deep.vmdk`]);
    expect(names(users.get(base.toString()))).toEqual(["deep", "linked", "plain"]);
    expect(names(users.get(`[${DS}] deep/deep.vmdk`))).toEqual(["deep"]);
  });

  it("does not take a file of the same name on another datastore, or the delta for its base", async () => {
    const users = await diskUsers(client, [new DatastorePath("LocalDS_1", base.path), new DatastorePath(DS, "linked/linked.vmdk")]);
    expect(users.get(`[LocalDS_1] ${base.path}`)).toEqual([]);
    expect(names(users.get(`[${DS}] linked/linked.vmdk`))).toEqual(["linked"]);
  });

  it("a VM destroyed stops using it", async () => {
    await runTask(client, "Destroy_Task", plain);
    const users = await diskUsers(client, [base]);
    expect(names(users.get(base.toString()))).toEqual(["deep", "linked"]);
  });

  it("gives the same answer when the VMs come in several pages", async () => {
    const paged = await VimClient.connect(simOptions(sim, { maximumObjects: 1 }));
    try {
      const users = await diskUsers(paged, [base]);
      expect(names(users.get(base.toString()))).toEqual(["deep", "linked"]);
      expect(paged.stats.byMethod.ContinueRetrievePropertiesEx).toBeGreaterThanOrEqual(1);
    } finally {
      await paged.close();
    }
  });

  it("asks nothing for no paths", async () => {
    const before = client.stats.roundTrips;
    expect((await diskUsers(client, [])).size).toBe(0);
    expect(client.stats.roundTrips).toBe(before);
  });
});

describe("diskUsage", () => {
  it("names the VMs whose configuration could not be read apart: their disks are unknown", async () => {
    // A vCenter answer with an orphaned VM (no config) and a readable one; the simulator has no orphaned VMs.
    const answer = {
      objects: [
        { obj: new MoRef("VirtualMachine", "vm-1"), propSet: [{ name: "name", val: "orphan" }] },
        {
          obj: new MoRef("VirtualMachine", "vm-2"),
          propSet: [
            { name: "name", val: "user" },
            { name: "config.hardware.device", val: [{ $type: "VirtualDisk", backing: { $type: "VirtualDiskFlatVer2BackingInfo", fileName: "[ds] a/b.vmdk" } }] },
          ],
        },
      ],
    };
    const fake = {
      serviceContent: { rootFolder: new MoRef("Folder", "group-d1"), propertyCollector: new MoRef("PropertyCollector", "propertyCollector") },
      options: { maximumObjects: 100 },
      invoke: async () => answer,
    } as unknown as VimClient;
    const usage = await diskUsage(fake, ["[ds] a/b.vmdk"]);
    expect(usage.unreadable.map((u) => u.name)).toEqual(["orphan"]);
    expect(names(usage.users.get("[ds] a/b.vmdk"))).toEqual(["user"]);
  });
});
