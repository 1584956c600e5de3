// Which host a new VM goes to in a cluster where DRS does not choose: the usable host with
// the most free memory, read in one round trip from the simulator.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import { chooseHost, hostFor, hostLoads, type HostLoad } from "../../provider/vsphere/host-select.js";
import { getCluster, getDatacenter, type Cluster } from "../../provider/vsphere/inventory.js";
import { MoRef } from "../../provider/vsphere/soap/xml.js";
import { runTask } from "../../provider/vsphere/task.js";
import { simOptions } from "../support/clients.js";
import { rejection } from "../support/rejection.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";

const load = (name: string, freeMemory: number, reason?: string): HostLoad => ({ ref: new MoRef("HostSystem", name), name, freeMemory, usable: reason === undefined, reason });

describe("chooseHost", () => {
  it("takes the usable host with the most free memory, ties to the first name", () => {
    expect(chooseHost("c", [load("b", 8), load("a", 8), load("c", 4)]).name).toBe("a");
    expect(chooseHost("c", [load("a", 2), load("big", 64, "it is in maintenance mode"), load("c", 4)]).name).toBe("c");
  });

  it("says for each host why none can take a VM", async () => {
    const err = await rejection(Promise.resolve().then(() => chooseHost("prod", [load("h1", 8, "it is disconnected"), load("h2", 8, "it is in maintenance mode")])));
    expect(err.message).toBe("no host of cluster prod can take a VM (h1: it is disconnected; h2: it is in maintenance mode)");
  });
});

describe("hostFor against the simulator", () => {
  let sim: Vcsim;
  let client: VimClient;
  let cluster: Cluster;
  beforeAll(async () => {
    sim = await startVcsim({ clusters: 1, hosts: 3, drs: false });
    client = await VimClient.connect(simOptions(sim));
    cluster = await getCluster(client, await getDatacenter(client), sim.info.inventory.datacenters[0]!.clusters[0]!.name);
  });
  afterAll(async () => {
    await client?.close();
    await sim?.stop();
  });

  it("names a host when DRS does not place, one the cluster has, not one in maintenance; none when DRS does", async () => {
    expect(cluster.drsEnabled).toBe(false);
    await sim.control.resetStats();
    const loads = await hostLoads(client, cluster.hosts);
    expect((await sim.control.stats()).methods.RetrievePropertiesEx).toBe(1);
    expect(loads).toHaveLength(3);
    const first = await hostFor(client, cluster);
    expect(cluster.hosts.some((h) => h.equals(first!))).toBe(true);
    await runTask(client, "EnterMaintenanceMode_Task", first!, { timeout: 0 });
    const next = await hostFor(client, cluster);
    expect(next && !next.equals(first!)).toBe(true);
    await runTask(client, "ExitMaintenanceMode_Task", first!, { timeout: 0 });
    expect(await hostFor(client, { ...cluster, drsEnabled: true, drsBehavior: "fullyAutomated" })).toBeUndefined();
    expect(await hostFor(client, { ...cluster, drsEnabled: true, drsBehavior: "manual" })).toBeDefined();
  });
});
