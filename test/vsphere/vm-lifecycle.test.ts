// A VM's power state and its removal the Nova way (power off, unregister, delete its
// folder), against the simulator: a linked clone's parent in the image cache survives.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import { DatastorePath, fileExists, makeDirectory } from "../../provider/vsphere/datastore.js";
import { getCluster, getDatacenter, type Cluster, type Datacenter } from "../../provider/vsphere/inventory.js";
import { removeVm, setPowerState, vmExists, vmState } from "../../provider/vsphere/vm-lifecycle.js";
import { simOptions } from "../support/clients.js";
import { addDisk, createDisk, createVm } from "../support/vms.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";

const DS = "LocalDS_0";
let sim: Vcsim;
let client: VimClient;
let dc: Datacenter;
let cluster: Cluster;

beforeAll(async () => {
  sim = await startVcsim({ clusters: 1, hosts: 1 });
  client = await VimClient.connect(simOptions(sim));
  dc = await getDatacenter(client);
  cluster = await getCluster(client, dc, sim.info.inventory.datacenters[0]!.clusters[0]!.name);
});
afterAll(async () => {
  await client?.close();
  await sim?.stop();
});

describe("VM lifecycle", () => {
  it("powers on, suspends and off, each from what was read, and a repeat is no error", async () => {
    const vm = await createVm(client, dc, cluster, "power", DS);
    expect((await vmState(client, vm))?.powerState).toBe("poweredOff");
    await setPowerState(client, vm, "poweredOff", "poweredOn");
    expect((await vmState(client, vm))?.powerState).toBe("poweredOn");
    // Read stale: it is on already; the refused power-on (InvalidPowerState) is success.
    await setPowerState(client, vm, "poweredOff", "poweredOn");
    await setPowerState(client, vm, "poweredOn", "suspended");
    expect((await vmState(client, vm))?.powerState).toBe("suspended");
    await setPowerState(client, vm, "suspended", "poweredOff");
    expect((await vmState(client, vm))?.powerState).toBe("poweredOff");
    expect(await removeVm(client, dc, vm)).toBe(true);
  });

  it("removes a linked clone (on) by its folder, leaving the cached parent; a VM gone already is success", async () => {
    const base = new DatastorePath(DS, "lc_base/img/img.vmdk");
    await makeDirectory(client, dc, base.parent, { createParents: true });
    await createDisk(client, dc, base.toString(), 1024);
    const vm = await createVm(client, dc, cluster, "clone", DS);
    await addDisk(client, vm, `[${DS}] clone/clone.vmdk`, { fileName: base.toString(), diskMode: "persistent" });
    const folder = (await vmState(client, vm))!.folder!;
    expect(folder.toString()).toBe(`[${DS}] clone`);
    await setPowerState(client, vm, "poweredOff", "poweredOn");
    await sim.control.resetStats();
    expect(await removeVm(client, dc, vm)).toBe(true);
    const methods = (await sim.control.stats()).methods;
    expect(methods.Destroy_Task).toBeUndefined();
    expect(methods.UnregisterVM).toBe(1);
    expect(await vmExists(client, vm)).toBe(false);
    expect(await fileExists(client, dc, folder)).toBe(false);
    expect(await fileExists(client, dc, base)).toBe(true);
    expect(await removeVm(client, dc, vm, { folder })).toBe(false);
  });
});
