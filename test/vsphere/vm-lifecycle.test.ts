// A VM's power state and its removal the Nova way (power off, unregister, delete its
// folder), against the simulator: a linked clone's parent in the image cache survives.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import { DatastorePath, fileExists, makeDirectory } from "../../provider/vsphere/datastore.js";
import { getCluster, getDatacenter, type Cluster, type Datacenter } from "../../provider/vsphere/inventory.js";
import { removeVm, setPowerState, vmExists, vmState, vmStateIn, vmStateSpec } from "../../provider/vsphere/vm-lifecycle.js";
import type { Alongside } from "../../provider/vsphere/property.js";
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
  it("reads a VM's state beside the datacenter in one round trip; a VM gone reads as gone, not as a failed look-up", async () => {
    const vm = await createVm(client, dc, cluster, "beside", DS);
    const here: Alongside = { specs: [vmStateSpec(vm)] };
    const before = client.stats.roundTrips;
    const found = await getDatacenter(client, dc.name, { alongside: here });
    expect(client.stats.roundTrips - before).toBe(1);
    expect(found.ref).toEqual(dc.ref);
    expect(vmStateIn(vm, here.reads!)).toEqual(await vmState(client, vm));
    expect(vmStateIn(vm, here.reads!)?.folder?.toString()).toBe(`[${DS}] beside`);

    // Removed with the state read beside: no read of its own.
    const at = client.stats.roundTrips;
    const methods = { ...client.stats.byMethod };
    expect(await removeVm(client, dc, vm, { state: { read: vmStateIn(vm, here.reads!) } })).toBe(true);
    expect((client.stats.byMethod.RetrievePropertiesEx ?? 0) - (methods.RetrievePropertiesEx ?? 0)).toBe(1); // the delete task's outcome only
    expect(client.stats.roundTrips - at).toBe(3); // UnregisterVM, DeleteDatastoreFile_Task and its read (off already: no power-off)
    const gone: Alongside = { specs: [vmStateSpec(vm)] };
    await getDatacenter(client, dc.name, { alongside: gone });
    expect(vmStateIn(vm, gone.reads!)).toBeUndefined();
    expect(await removeVm(client, dc, vm, { state: { read: vmStateIn(vm, gone.reads!) } })).toBe(false);
  });
});
