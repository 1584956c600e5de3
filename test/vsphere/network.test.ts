// Host networking on the simulator as vCenter reports it, and the driver's network
// functions: one Network object per port group name, removed with its last host;
// HostSystem.config.network and HostNetworkSystem.networkInfo saying the same;
// UpdatePortGroup replacing the whole spec (policy included); the inventory cache.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { VimClient } from "../../provider/vsphere/client.js";
import { ManagedObjectNotFoundFault } from "../../provider/vsphere/errors.js";
import { findCluster, type Cluster } from "../../provider/vsphere/inventory.js";
import { inventoryCache, loadInventory } from "../../provider/vsphere/inventory-cache.js";
import {
  addStandardPortGroup,
  findNetwork,
  getHostNetworking,
  removeStandardPortGroup,
  standardNetworkOf,
  updateStandardPortGroup,
  type HostNetworking,
} from "../../provider/vsphere/network.js";
import { PropertyCollector } from "../../provider/vsphere/property.js";
import { arrayOf, dataObject, int, moRef, str } from "../../provider/vsphere/schema.js";
import { simOptions } from "../support/clients.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";

let sim: Vcsim;
let client: VimClient;
let cluster: Cluster;
let hosts: HostNetworking[];

beforeAll(async () => {
  sim = await startVcsim({ hosts: 3, vms: 0, datacenters: 1 });
  client = await VimClient.connect(simOptions(sim));
  cluster = await findCluster(client, "DC0_C0");
  hosts = await getHostNetworking(client, cluster.hosts);
});
afterAll(async () => {
  await client?.close();
  await sim?.stop();
});

const PortGroups = arrayOf(dataObject({ spec: dataObject({ name: str, vlanId: int, vswitchName: str }) }));
const Vswitches = arrayOf(dataObject({ name: str, portgroup: arrayOf(str) }));

/** A host's port groups and vSwitch port group lists, as HostSystem.config.network and as networkInfo say. */
async function bothViews(h: HostNetworking) {
  const pc = new PropertyCollector(client);
  const host = await pc.get(h.host, z.object({ "config.network.portgroup": PortGroups, "config.network.vswitch": Vswitches }));
  const ns = await pc.get(h.networkSystem, z.object({ "networkInfo.portgroup": PortGroups, "networkInfo.vswitch": Vswitches }));
  const view = (pgs: z.infer<typeof PortGroups>, vss: z.infer<typeof Vswitches>) => ({
    portgroups: pgs.map((p) => `${p.spec.name}/${p.spec.vlanId}/${p.spec.vswitchName}`).sort(),
    vswitches: Object.fromEntries(vss.map((v) => [v.name, [...v.portgroup].sort()])),
  });
  return { config: view(host["config.network.portgroup"], host["config.network.vswitch"]), networkInfo: view(ns["networkInfo.portgroup"], ns["networkInfo.vswitch"]) };
}

describe("simulator host networking", () => {
  it("HostSystem.config.network follows AddPortGroup, UpdatePortGroup and RemovePortGroup as networkInfo does", async () => {
    const h = hosts[0]!;
    const has = (v: { portgroups: string[]; vswitches: Record<string, string[]> }, entry: string, vswitch: string) =>
      v.portgroups.includes(entry) && (v.vswitches[vswitch] ?? []).includes(entry.split("/")[0]!);

    await addStandardPortGroup(client, h.networkSystem, { name: "sim-cfg", vlanId: 7, vswitchName: "vSwitch0" });
    let v = await bothViews(h);
    expect(v.config).toEqual(v.networkInfo);
    expect(has(v.config, "sim-cfg/7/vSwitch0", "vSwitch0")).toBe(true);

    await updateStandardPortGroup(client, h.networkSystem, { name: "sim-cfg", vlanId: 8, vswitchName: "vSwitch1" });
    v = await bothViews(h);
    expect(v.config).toEqual(v.networkInfo);
    expect(has(v.config, "sim-cfg/8/vSwitch1", "vSwitch1")).toBe(true);
    expect(v.config.vswitches.vSwitch0).not.toContain("sim-cfg");

    await removeStandardPortGroup(client, h.networkSystem, "sim-cfg");
    v = await bothViews(h);
    expect(v.config).toEqual(v.networkInfo);
    expect(v.config.portgroups.some((p) => p.startsWith("sim-cfg/"))).toBe(false);
    expect(Object.values(v.config.vswitches).flat()).not.toContain("sim-cfg");
  });

  it("makes one Network per name across hosts, and removes it with the last host, not before", async () => {
    for (const h of hosts) await addStandardPortGroup(client, h.networkSystem, { name: "sim-net", vlanId: 3, vswitchName: "vSwitch0" });
    const network = await findNetwork(client, cluster.datacenter, "sim-net");
    expect(network?.type).toBe("Network");
    const { host } = await new PropertyCollector(client).get(network!, z.object({ host: arrayOf(moRef) }));
    expect(host.map((r) => r.toString()).sort()).toEqual(hosts.map((h) => h.host.toString()).sort());

    for (const h of hosts.slice(0, -1)) {
      await removeStandardPortGroup(client, h.networkSystem, "sim-net");
      expect(await findNetwork(client, cluster.datacenter, "sim-net")).toEqual(network);
    }
    await removeStandardPortGroup(client, hosts.at(-1)!.networkSystem, "sim-net");
    expect(await findNetwork(client, cluster.datacenter, "sim-net")).toBeUndefined();
    await expect(new PropertyCollector(client).get(network!, z.object({ name: str }))).rejects.toBeInstanceOf(ManagedObjectNotFoundFault);
  });

  it("stores the policy UpdatePortGroup sends, and drops overrides a spec leaves out, as ESXi does", async () => {
    const h = hosts[1]!;
    await addStandardPortGroup(client, h.networkSystem, { name: "sim-policy", vlanId: 1, vswitchName: "vSwitch0" });
    const policy = { security: { allowPromiscuous: true }, nicTeaming: { policy: "failover_explicit" } };
    await updateStandardPortGroup(client, h.networkSystem, { name: "sim-policy", vlanId: 2, vswitchName: "vSwitch0", policy });
    const read = async () => (await getHostNetworking(client, [h.host]))[0]!.portgroups.find((p) => p.name === "sim-policy")!;
    expect((await read()).policy).toMatchObject({ security: { allowPromiscuous: "true" }, nicTeaming: { policy: "failover_explicit" } });

    // Sent back as read, the overrides stay; left out, they are gone.
    const current = await read();
    await updateStandardPortGroup(client, h.networkSystem, { name: "sim-policy", vlanId: 3, vswitchName: "vSwitch0", policy: current.policy });
    expect(await read()).toMatchObject({ vlanId: 3, policy: { security: { allowPromiscuous: "true" } } });
    await updateStandardPortGroup(client, h.networkSystem, { name: "sim-policy", vlanId: 4, vswitchName: "vSwitch0" });
    expect((await read()).policy?.security ?? "").toEqual("");
    await removeStandardPortGroup(client, h.networkSystem, "sim-policy");
  });

  it("sends back a policy read with empty elements (ESXi's default port groups have them)", async () => {
    const h = hosts[2]!;
    const vmNetwork = () => getHostNetworking(client, [h.host]).then((r) => r[0]!.portgroups.find((p) => p.name === "Management Network")!);
    const pg = await vmNetwork();
    expect(pg.policy?.nicTeaming).toMatchObject({ policy: "loadbalance_srcid", nicOrder: { activeNic: "vmnic0" } });
    await updateStandardPortGroup(client, h.networkSystem, { name: pg.name, vlanId: 12, vswitchName: pg.vswitchName, policy: pg.policy });
    expect(await vmNetwork()).toMatchObject({ vlanId: 12, policy: pg.policy });
    await updateStandardPortGroup(client, h.networkSystem, { name: pg.name, vlanId: pg.vlanId, vswitchName: pg.vswitchName, policy: pg.policy });
  });
});

describe("driver network look-ups", () => {
  it("finds the Network of a standard port group from its hosts, with the hosts' networking, in one round trip", async () => {
    for (const h of hosts) await addStandardPortGroup(client, h.networkSystem, { name: "drv-net", vlanId: 9, vswitchName: "vSwitch1" });
    const before = client.stats.roundTrips;
    const { network, hosts: read } = await standardNetworkOf(client, cluster.hosts, "drv-net");
    expect(client.stats.roundTrips - before).toBe(1);
    expect(network).toEqual(await findNetwork(client, cluster.datacenter, "drv-net"));
    expect(read.map((h) => h.portgroups.find((p) => p.name === "drv-net")?.vlanId)).toEqual([9, 9, 9]);
    for (const h of hosts) await removeStandardPortGroup(client, h.networkSystem, "drv-net");
  });

  it("waits, within a bound, for a Network vCenter lists a moment after the host change", async () => {
    // The simulator's lateNetwork rule: the Network made by the first AddPortGroup is
    // listed (on hosts, cluster, datacenter, folder) only 1.5 s later, as vCenter does
    // when it syncs the host's change into its inventory a moment after.
    await sim.control.addRule({ kind: "lateNetwork", ms: 1500 });
    try {
      for (const h of hosts) await addStandardPortGroup(client, h.networkSystem, { name: "drv-late", vlanId: 4, vswitchName: "vSwitch0" });
      const unlisted = await standardNetworkOf(client, cluster.hosts, "drv-late", 0);
      expect(unlisted.network).toBeUndefined();
      expect(unlisted.hosts.every((h) => h.portgroups.some((p) => p.name === "drv-late"))).toBe(true);
      expect(await findNetwork(client, cluster.datacenter, "drv-late")).toBeUndefined();

      const before = client.stats.roundTrips;
      const found = await standardNetworkOf(client, cluster.hosts, "drv-late", 10_000);
      expect(found.network?.type).toBe("Network");
      expect(client.stats.roundTrips - before).toBeGreaterThan(1); // it had to read again
      expect(found.network).toEqual(await findNetwork(client, cluster.datacenter, "drv-late"));
      // Not on any host: nothing to wait for, one read.
      const once = client.stats.roundTrips;
      expect((await standardNetworkOf(client, cluster.hosts, "drv-absent", 10_000)).network).toBeUndefined();
      expect(client.stats.roundTrips - once).toBe(1);
    } finally {
      await sim.control.clearRules();
      for (const h of hosts) await removeStandardPortGroup(client, h.networkSystem, "drv-late").catch(() => {});
    }
  });

  it("the simulator's late Network is one object for every host, and goes with its last host even before it is listed", async () => {
    await sim.control.addRule({ kind: "lateNetwork", ms: 60_000 });
    try {
      for (const h of hosts) await addStandardPortGroup(client, h.networkSystem, { name: "drv-unlisted", vlanId: 5, vswitchName: "vSwitch0" });
      for (const h of hosts) await removeStandardPortGroup(client, h.networkSystem, "drv-unlisted");
      const networks = await new PropertyCollector(client).find(client.serviceContent.rootFolder, "Network", z.object({ name: str }));
      expect(networks.filter((n) => n.props.name === "drv-unlisted")).toEqual([]);
    } finally {
      await sim.control.clearRules();
    }
  });

  it("reads datacenters, clusters, hosts' networking and switches in one traversal from the root folder", async () => {
    const before = client.stats.roundTrips;
    const snap = await loadInventory(client, { hosts: true, switches: true });
    expect(client.stats.roundTrips - before).toBe(1);
    expect(snap.datacenters.map((d) => d.name)).toEqual(["DC0"]);
    expect(snap.clusters.map((c) => [c.name, c.datacenter.name, c.hosts.length])).toEqual([["DC0_C0", "DC0", 3]]);
    expect(snap.hosts.get(hosts[0]!.host.toString())).toMatchObject({ hostName: hosts[0]!.hostName, networkSystem: hosts[0]!.networkSystem });
    expect(snap.hosts.get(hosts[0]!.host.toString())!.vswitches).toEqual([
      { name: "vSwitch0", pnicDevices: ["vmnic0"] },
      { name: "vSwitch1", pnicDevices: ["vmnic1"] },
    ]);
    expect(snap.switches.map((s) => [s.name, s.datacenter.name])).toEqual([["DVS0", "DC0"]]);
  });

  it("caches per client: a second look-up is free, a write to a host re-reads that host only, fresh reads again", async () => {
    const own = await VimClient.connect(simOptions(sim));
    try {
      const cache = inventoryCache(own);
      expect(inventoryCache(own)).toBe(cache);
      await cache.topology();
      const start = own.stats.roundTrips;
      await cache.topology();
      expect(own.stats.roundTrips).toBe(start);

      const h = hosts[2]!;
      await addStandardPortGroup(own, { host: h.host, networkSystem: h.networkSystem }, { name: "cache-pg", vlanId: 5, vswitchName: "vSwitch0" });
      const afterWrite = own.stats.roundTrips;
      const snap = await cache.topology();
      expect(own.stats.roundTrips - afterWrite).toBe(1); // that host, re-read
      expect(snap.hosts.get(h.host.toString())!.portgroups.map((p) => p.name)).toContain("cache-pg");

      // Changed by someone else: the cache does not know until asked for a fresh read.
      await removeStandardPortGroup(client, h.networkSystem, "cache-pg");
      expect((await cache.topology()).hosts.get(h.host.toString())!.portgroups.map((p) => p.name)).toContain("cache-pg");
      expect((await cache.topology({ fresh: true })).hosts.get(h.host.toString())!.portgroups.map((p) => p.name)).not.toContain("cache-pg");
    } finally {
      await own.close();
    }
  });
});
