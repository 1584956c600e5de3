// Datastore selection: every rejection reason, ties and regex anchoring as pure
// cases; then a simulator with shared, per-cluster and host-local datastores.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import { anchoredRegex, chooseDatastore, selectDatastore, sweepDatastores, type HostName } from "../../provider/vsphere/datastore-select.js";
import type { Alongside } from "../../provider/vsphere/property.js";
import { findDatastore } from "../../provider/vsphere/datastore.js";
import { NoSuitableDatastoreError, NotFoundError } from "../../provider/vsphere/errors.js";
import { getCluster, getDatacenter, getDatastores, type Datastore } from "../../provider/vsphere/inventory.js";
import { MoRef } from "../../provider/vsphere/soap/xml.js";
import { simOptions } from "../support/clients.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";

const GiB = 2 ** 30;
const h1: HostName = { ref: new MoRef("HostSystem", "host-1"), name: "esx1" };
const h2: HostName = { ref: new MoRef("HostSystem", "host-2"), name: "esx2" };
const hosts = [h1, h2];

let n = 0;
function ds(name: string, over: Partial<Datastore> = {}): Datastore {
  return {
    ref: new MoRef("Datastore", `datastore-${++n}`),
    name,
    url: `ds:///vmfs/volumes/${name}/`,
    type: "VMFS",
    capacity: 100 * GiB,
    freeSpace: 50 * GiB,
    accessible: true,
    maintenanceMode: "normal",
    hosts: [h1.ref, h2.ref],
    ...over,
  };
}

/** The error of class `cls` that `f` throws (any other outcome fails the test). */
function thrown<E extends Error>(cls: new (...args: never[]) => E, f: () => unknown): E {
  try {
    f();
  } catch (err) {
    if (err instanceof cls) return err;
    throw err;
  }
  throw new Error(`expected ${cls.name}`);
}
const refusal = (f: () => unknown) => thrown(NoSuitableDatastoreError, f);

describe("chooseDatastore (pure)", () => {
  it("picks the most free space among the fit ones, and says why the others lost", () => {
    const pick = chooseDatastore("c1", [ds("a", { freeSpace: 10 * GiB }), ds("b", { freeSpace: 70 * GiB }), ds("c", { freeSpace: 30 * GiB })], hosts);
    expect(pick.datastore.name).toBe("b");
    expect(pick.rejected.map((r) => r.name)).toEqual(["c", "a"]);
    expect(pick.rejected[0]?.reasons[0]).toMatch(/less free space .* than b/);
  });

  it("breaks ties by name, whatever order vCenter lists them in", () => {
    const a = ds("alpha");
    const b = ds("beta");
    expect(chooseDatastore("c1", [b, a], hosts).datastore.name).toBe("alpha");
    expect(chooseDatastore("c1", [a, b], hosts).datastore.name).toBe("alpha");
  });

  it("accepts VMFS, NFS and NFS41; vsan only when asked for; never others", () => {
    for (const type of ["VMFS", "NFS", "NFS41"]) expect(chooseDatastore("c1", [ds("x", { type })], hosts).datastore.name).toBe("x");
    const err = refusal(() => chooseDatastore("c1", [ds("v", { type: "vsan" }), ds("l", { type: "local" })], hosts));
    expect(err.rejected).toEqual([
      { name: "v", reasons: ["type vsan is not one of VMFS, NFS, NFS41"] },
      { name: "l", reasons: ["type local is not one of VMFS, NFS, NFS41"] },
    ]);
    expect(chooseDatastore("c1", [ds("v", { type: "vsan" })], hosts, { allowVsan: true }).datastore.name).toBe("v");
  });

  it("refuses inaccessible datastores and those in or entering maintenance", () => {
    const err = refusal(() =>
      chooseDatastore("c1", [ds("off", { accessible: false }), ds("mm", { maintenanceMode: "inMaintenance" }), ds("em", { maintenanceMode: "enteringMaintenance" })], hosts),
    );
    expect(err.rejected.map((r) => [r.name, r.reasons])).toEqual([
      ["off", ["not accessible"]],
      ["mm", ["maintenance mode inMaintenance"]],
      ["em", ["maintenance mode enteringMaintenance"]],
    ]);
    expect(chooseDatastore("c1", [ds("nomm", { maintenanceMode: undefined })], hosts).datastore.name).toBe("nomm");
  });

  it("refuses a datastore missing on any host of the cluster, naming the hosts", () => {
    const err = refusal(() => chooseDatastore("c1", [ds("local", { hosts: [h1.ref] }), ds("none", { hosts: [] })], hosts));
    expect(err.rejected).toEqual([
      { name: "local", reasons: ["not mounted and accessible on host esx2"] },
      { name: "none", reasons: ["not mounted and accessible on hosts esx1, esx2"] },
    ]);
    expect(err.message).toContain("cluster c1");
  });

  it("anchors datastoreRegex at the start only, as re.match", () => {
    const list = [ds("xds1", { freeSpace: 90 * GiB }), ds("ds1", { freeSpace: 10 * GiB }), ds("ds10", { freeSpace: 20 * GiB })];
    expect(chooseDatastore("c1", list, hosts, { datastoreRegex: "ds1" }).datastore.name).toBe("ds10");
    expect(chooseDatastore("c1", list, hosts, { datastoreRegex: "ds1$" }).datastore.name).toBe("ds1");
    const pick = chooseDatastore("c1", list, hosts, { datastoreRegex: /ds1/g });
    expect(pick.rejected.find((r) => r.name === "xds1")?.reasons).toEqual(["name does not match datastoreRegex /ds1/g"]);
    const re = anchoredRegex(/DS/i);
    expect(["ds2", "xDS"].map((s) => ((re.lastIndex = 0), re.test(s)))).toEqual([true, false]);
    // Alternation stays anchored: "b" must not match in the middle either.
    expect(chooseDatastore("c1", [ds("ab"), ds("c")], hosts, { datastoreRegex: "c|b" }).datastore.name).toBe("c");
  });

  it("refuses when nothing fits requiredBytes, listing each candidate and why", () => {
    const err = refusal(() =>
      chooseDatastore("c1", [ds("small", { freeSpace: 1 * GiB }), ds("nfs", { type: "NFS", freeSpace: 2 * GiB, accessible: false })], hosts, { requiredBytes: 5 * GiB }),
    );
    expect(err.code).toBe("NoSuitableDatastore");
    expect(err.requiredBytes).toBe(5 * GiB);
    expect(err.rejected).toEqual([
      { name: "small", reasons: ["free space 1.00 GiB < required 5.00 GiB"] },
      { name: "nfs", reasons: ["not accessible", "free space 2.00 GiB < required 5.00 GiB"] },
    ]);
    expect(err.message).toMatch(/small: free space 1.00 GiB < required 5.00 GiB, nfs: not accessible; free space/);
    expect(chooseDatastore("c1", [ds("exact", { freeSpace: 5 * GiB })], hosts, { requiredBytes: 5 * GiB }).datastore.name).toBe("exact");
  });

  it("says the cluster has no datastores when it has none", () => {
    expect(refusal(() => chooseDatastore("c1", [], hosts)).message).toMatch(/has no datastores/);
  });
});

describe("sweepDatastores (pure): what the cache sweeper looks at, for the resource and the command line", () => {
  const list = [ds("b-ds"), ds("Z-ds"), ds("a-ds"), ds("off", { accessible: false }), ds("xa-ds")];
  const notFound = (f: () => unknown) => thrown(NotFoundError, f);

  it("without a choice, every accessible datastore, in code-unit name order", () => {
    expect(sweepDatastores("c1", list)).toEqual(["Z-ds", "a-ds", "b-ds", "xa-ds"]);
  });

  it("datastoreRegex matches from the start (re.match), accessible ones only", () => {
    expect(sweepDatastores("c1", list, { datastoreRegex: "a" })).toEqual(["a-ds"]);
    expect(sweepDatastores("c1", list, { datastoreRegex: "[ab]-|of" })).toEqual(["a-ds", "b-ds"]);
  });

  it("names are taken as given, accessible or not, each one the cluster's", () => {
    expect(sweepDatastores("c1", list, { datastores: ["off", "b-ds"] })).toEqual(["off", "b-ds"]);
    const err = notFound(() => sweepDatastores("c1", list, { datastores: ["b-ds", "nope", "gone"] }));
    expect(err).toMatchObject({ kind: "datastore", wanted: "nope" });
    expect(err.message).toBe('datastores "nope", "gone" not in cluster c1 (its datastores: Z-ds, a-ds, b-ds, off, xa-ds)');
  });

  it("refuses a regex that leaves nothing, and a cluster with no accessible datastore, listing the cluster's", () => {
    const err = notFound(() => sweepDatastores("c1", list, { datastoreRegex: "off|zz" }));
    expect(err).toMatchObject({ kind: "datastore", wanted: "off|zz" });
    expect(err.message).toBe(`datastoreRegex "off|zz" matches none of cluster c1's accessible datastores (its datastores: Z-ds, a-ds, b-ds, off, xa-ds)`);
    expect(notFound(() => sweepDatastores("c1", [ds("off", { accessible: false })])).message).toBe("cluster c1 has no accessible datastore (its datastores: off)");
    expect(notFound(() => sweepDatastores("c1", [])).message).toBe("cluster c1 has no accessible datastore (its datastores: none)");
  });
});

describe("selectDatastore against the simulator", () => {
  let sim: Vcsim;
  let client: VimClient;

  beforeAll(async () => {
    sim = await startVcsim({ datastores: 2, clusterDatastores: 1, localDatastores: 1 });
    client = await VimClient.connect(simOptions(sim));
  });
  afterAll(async () => {
    await client?.close();
    await sim?.stop();
  });

  it("never picks a host-local datastore, and reads everything in one property-collector call", async () => {
    const dc = await getDatacenter(client);
    const cluster = await getCluster(client, dc, "DC0_C0");
    const all = await getDatastores(client, cluster.datastores);
    const names = all.map((d) => d.name);
    // The cluster lists its hosts' local datastores too: they must be refused.
    expect(names.filter((n) => n.includes("_local"))).not.toHaveLength(0);
    const before = client.stats.byMethod.RetrievePropertiesEx ?? 0;
    const pick = await selectDatastore(client, cluster);
    expect(client.stats.byMethod.RetrievePropertiesEx).toBe(before + 1);
    expect(pick.datastore.name).not.toMatch(/_local/);
    expect(pick.datastore.hosts.length).toBeGreaterThanOrEqual(cluster.hosts.length);
    const best = Math.max(...all.filter((d) => !d.name.includes("_local")).map((d) => d.freeSpace));
    expect(pick.datastore.freeSpace).toBe(best);
    for (const local of names.filter((n) => n.includes("_local"))) {
      expect(pick.rejected.find((r) => r.name === local)?.reasons.join()).toMatch(/not mounted and accessible on host/);
    }
  });

  it("honours datastoreRegex (the per-cluster datastore) and refuses what does not fit", async () => {
    const dc = await getDatacenter(client);
    const cluster = await getCluster(client, dc, "DC0_C0");
    const pick = await selectDatastore(client, cluster, { datastoreRegex: "DC0_C0_DS" });
    expect(pick.datastore.name).toMatch(/^DC0_C0_DS/);
    const err = await selectDatastore(client, cluster, { requiredBytes: 2 ** 60 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoSuitableDatastoreError);
    expect((err as NoSuitableDatastoreError).rejected.length).toBe(new Set((await getDatastores(client, cluster.datastores)).map((d) => d.name)).size);
  });
  it("carries other reads in the same round trip, and leaves the datastores' browsers for findDatastore", async () => {
    const fresh = await VimClient.connect(simOptions(sim));
    try {
      const dc = await getDatacenter(fresh);
      const cluster = await getCluster(fresh, dc, "DC0_C0");
      const alongside: Alongside = { specs: [{ propSet: [{ type: "Datacenter", pathSet: ["name"] }], objectSet: [{ obj: dc.ref }] }] };
      const before = fresh.stats.roundTrips;
      const pick = await selectDatastore(fresh, cluster, { alongside });
      expect(fresh.stats.roundTrips - before).toBe(1);
      // The datacenter came back beside the datastores, and only it.
      expect(alongside.reads?.map((c) => [c.obj.toString(), c.props.name])).toEqual([[dc.ref.toString(), dc.name]]);
      // The chosen datastore's browser is known: a search of it reads nothing else first.
      const at = fresh.stats.roundTrips;
      const handle = await findDatastore(fresh, dc, pick.datastore.name);
      expect(fresh.stats.roundTrips).toBe(at);
      expect(handle.browser).toEqual(pick.datastore.browser);
      expect(handle.browser?.type).toBe("HostDatastoreBrowser");
      // A name the choice did not read is looked for in the whole datacenter, by a read.
      const err = await findDatastore(fresh, dc, "no-such-datastore").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotFoundError);
      expect(fresh.stats.roundTrips).toBe(at + 1);
    } finally {
      await fresh.close();
    }
  });
});
