// Storage policies through SPBM (/pbm, urn:pbm) on the vim session, against the
// simulator's PBM service with the harness's corrections (test/vcsim/pbm.go): the
// session must be in the vcSessionCookie SOAP header, requests are schema-checked,
// and datastores can be marked as not satisfying a policy. Round trips counted.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import { findDatastore } from "../../provider/vsphere/datastore.js";
import { getCluster, getDatacenter, type Cluster, type Datacenter } from "../../provider/vsphere/inventory.js";
import { StoragePolicyNotFoundError, compatibleDatastores, findPolicy, pbmService } from "../../provider/vsphere/pbm.js";
import { moRef } from "../../provider/vsphere/schema.js";
import { buildEnvelope, parseEnvelope } from "../../provider/vsphere/soap/envelope.js";
import { MoRef } from "../../provider/vsphere/soap/xml.js";
import { runTask } from "../../provider/vsphere/task.js";
import { buildVmConfigSpec } from "../../provider/vsphere/vm-spec.js";
import { simOptions } from "../support/clients.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";

// Profiles govmomi's PBM simulator ships (captured from vCenter 6.7).
const VSAN = { id: "aa6d5a82-1c88-45da-85d3-3d74b91a5bad", name: "vSAN Default Storage Policy" };
const SHIPPED = ["vSAN Default Storage Policy", "VVol No Requirements Policy", "VM Encryption Policy", "Host-local PMem Default Storage Policy"];
const PROFILE_MANAGER = new MoRef("PbmProfileProfileManager", "ProfileManager");

let sim: Vcsim;
let client: VimClient;
let dc: Datacenter;
let cluster: Cluster;
let datastores: MoRef[];

/** Round trips per method while `fn` runs. */
async function tripsOf(fn: () => Promise<unknown>): Promise<Record<string, number>> {
  const before = { ...client.stats.byMethod };
  await fn();
  const out: Record<string, number> = {};
  for (const [m, n] of Object.entries(client.stats.byMethod)) if (n !== (before[m] ?? 0)) out[m] = n - (before[m] ?? 0);
  return out;
}

beforeAll(async () => {
  sim = await startVcsim({ schemaOrder: "strict", clusters: 1, hosts: 1, datastores: 2, clusterDatastores: 1 });
  client = await VimClient.connect(simOptions(sim));
  dc = await getDatacenter(client);
  cluster = await getCluster(client, dc, sim.info.inventory.datacenters[0]!.clusters[0]!.name);
  datastores = await Promise.all(["LocalDS_0", "LocalDS_1", "DC0_C0_DS0"].map(async (n) => (await findDatastore(client, dc, n)).ref));
});
afterAll(async () => {
  await client?.close();
  await sim?.stop();
});
beforeEach(async () => {
  await sim.control.clearPolicyMarks();
});

describe("findPolicy", () => {
  it("finds a policy by name: three round trips on the first SPBM call of a client, two after (the service content is kept)", async () => {
    const fresh = await VimClient.connect(simOptions(sim));
    try {
      const before = { ...fresh.stats.byMethod };
      expect(await findPolicy(fresh, VSAN.name)).toEqual(VSAN);
      const first = { ...fresh.stats.byMethod };
      expect(await findPolicy(fresh, "VM Encryption Policy")).toMatchObject({ name: "VM Encryption Policy" });
      const trips = (from: Record<string, number>, to: Record<string, number>) =>
        Object.fromEntries(Object.entries(to).filter(([m]) => m.startsWith("Pbm")).map(([m, n]) => [m, n - (from[m] ?? 0)]).filter(([, n]) => n !== 0));
      expect(trips(before, first)).toEqual({ PbmRetrieveServiceContent: 1, PbmQueryProfile: 1, PbmRetrieveContent: 1 });
      expect(trips(first, fresh.stats.byMethod)).toEqual({ PbmQueryProfile: 1, PbmRetrieveContent: 1 });
    } finally {
      await fresh.close();
    }
  });

  it("speaks SPBM 1.0 to vCenter 5.5 (SPBM 2.0 came with 6.0)", () => {
    const at = (apiVersion: string) => pbmService({ serviceContent: { about: { apiVersion } } } as unknown as VimClient).version;
    expect([at("5.5"), at("6.0"), at("7.0.3")]).toEqual(["1.0", "2.0", "2.0"]);
  });

  it("speaks SPBM 2.0 to a vCenter 6.x (SOAPAction urn:pbm/2.0) at /pbm", async () => {
    expect(pbmService(client)).toEqual({ path: "/pbm", namespace: "urn:pbm", version: "2.0" });
    await findPolicy(client, VSAN.name); // the service content, read once
    await sim.control.resetStats();
    await findPolicy(client, VSAN.name);
    const stats = await sim.control.stats();
    expect(stats.soapActions["urn:pbm/2.0"]).toBe(2);
    expect(stats.methods).toMatchObject({ PbmQueryProfile: 1, PbmRetrieveContent: 1 });
  });

  it("a misspelt name: StoragePolicyNotFound listing every policy, the closest first", async () => {
    const err = await findPolicy(client, "vSAN Defualt Storage Policy").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoragePolicyNotFoundError);
    const e = err as StoragePolicyNotFoundError;
    expect(e.code).toBe("StoragePolicyNotFound");
    expect(e.existing[0]).toBe(VSAN.name);
    expect([...e.existing].sort()).toEqual([...SHIPPED].sort());
    expect(e.message).toContain(`storage policy "vSAN Defualt Storage Policy" not found`);
    expect(e.message).toContain(`closest first: "vSAN Default Storage Policy", `);
  });

  it("names are exact, as vCenter compares them: another case is not found, and is the first suggestion", async () => {
    const err = (await findPolicy(client, "vm encryption policy").catch((e: unknown) => e)) as StoragePolicyNotFoundError;
    expect(err.code).toBe("StoragePolicyNotFound");
    expect(err.existing[0]).toBe("VM Encryption Policy");
  });

  it("survives a session vCenter ended: the re-login's new cookie goes into the SOAP header", async () => {
    const fresh = await VimClient.connect(simOptions(sim));
    try {
      await findPolicy(fresh, VSAN.name);
      await sim.control.expireSessions();
      expect(await findPolicy(fresh, VSAN.name)).toEqual(VSAN);
      expect(fresh.stats.relogins).toBe(1);
    } finally {
      await fresh.close();
    }
    // client's own session was ended too: it logs in again on its next call.
    await findPolicy(client, VSAN.name);
  });
});

describe("SPBM calls on the vim session (client.invokeAt)", () => {
  it("send vCenter's quoted cookie value without its quotes in vcSessionCookie, and keep it out of logs", async () => {
    const fresh = await VimClient.connect(simOptions(sim));
    try {
      const key = fresh.http.cookie!.slice(fresh.http.cookie!.indexOf("=") + 1);
      fresh.http.cookie = `vmware_soap_session="${key}"`; // as vCenter sets it
      expect(await findPolicy(fresh, VSAN.name)).toEqual(VSAN);
      expect(fresh.stats.relogins).toBe(0); // the header named the live session at once
      expect(fresh.redact(`header ${key} cookie "${key}"`)).toBe(`header *** cookie ***`);
    } finally {
      await fresh.close();
    }
  });

  it("write PBM arguments in schema order whatever the key order, refuse unknown ones, and escape header values", () => {
    const xml = buildEnvelope(
      "PbmQueryMatchingHub",
      new MoRef("PbmPlacementSolver", "placementSolver"),
      { profile: { uniqueId: "p-1" }, hubsToSearch: [{ hubId: "datastore-1", hubType: "Datastore" }] },
      { namespace: "urn:pbm", header: { vcSessionCookie: `a&b<c` } },
    );
    expect(xml).toContain(`<soapenv:Header><vcSessionCookie>a&amp;b&lt;c</vcSessionCookie></soapenv:Header>`);
    expect(xml).toContain(
      `<PbmQueryMatchingHub xmlns="urn:pbm"><_this type="PbmPlacementSolver">placementSolver</_this>` +
        `<hubsToSearch><hubType>Datastore</hubType><hubId>datastore-1</hubId></hubsToSearch><profile><uniqueId>p-1</uniqueId></profile></PbmQueryMatchingHub>`,
    );
    expect(() => buildEnvelope("PbmQueryMatchingHub", PROFILE_MANAGER, { profile: { id: "p-1" } }, { namespace: "urn:pbm" })).toThrow(/PbmProfileId has no field "id"; valid keys: uniqueId/);
    // vim25 envelopes are as before: no header, urn:vim25.
    expect(buildEnvelope("CurrentTime", new MoRef("ServiceInstance", "ServiceInstance"))).toMatch(/<soapenv:Body><CurrentTime xmlns="urn:vim25">/);
  });
});

describe("compatibleDatastores", () => {
  it("every datastore when the policy excludes none, in the order given, in one round trip", async () => {
    await findPolicy(client, VSAN.name); // service content read
    const given = [datastores[2]!, datastores[0]!, datastores[1]!];
    let got: MoRef[] = [];
    const trips = await tripsOf(async () => {
      got = await compatibleDatastores(client, VSAN.id, given);
    });
    expect(got.map(String)).toEqual(given.map(String));
    expect(trips).toEqual({ PbmQueryMatchingHub: 1 });
  });

  it("leaves out the datastores that do not satisfy the policy, and only for that policy", async () => {
    await sim.control.markPolicyIncompatible(VSAN.id, ["LocalDS_1", datastores[2]!.value]);
    expect((await compatibleDatastores(client, VSAN.id, datastores)).map(String)).toEqual([String(datastores[0])]);
    const vvol = await findPolicy(client, "VVol No Requirements Policy");
    expect(await compatibleDatastores(client, vvol.id, datastores)).toHaveLength(3);
  });

  it("asks only about the datastores given (the simulator's own answer would name every datastore); none given is no call", async () => {
    expect((await compatibleDatastores(client, VSAN.id, [datastores[1]!])).map(String)).toEqual([String(datastores[1])]);
    expect(await tripsOf(async () => expect(await compatibleDatastores(client, VSAN.id, [])).toEqual([]))).toEqual({});
  });
});

describe("the harness's SPBM (test/vcsim/pbm.go)", () => {
  const queryProfile = { resourceType: { resourceType: "STORAGE" }, profileCategory: "REQUIREMENT" };
  const send = async (xml: string, method: string) => {
    const res = await client.http.exchange("/pbm", xml, { "content-type": "text/xml; charset=utf-8", soapaction: "urn:pbm/2.0" });
    return parseEnvelope(res.text, method);
  };
  const cookieValue = () => client.http.cookie!.slice(client.http.cookie!.indexOf("=") + 1).replace(/^"|"$/g, "");

  it("refuses a call that has the session only in the HTTP cookie, as vCenter's SPBM does; the vcSessionCookie header is what counts", async () => {
    await findPolicy(client, VSAN.name); // logged in
    const bare = await send(buildEnvelope("PbmQueryProfile", PROFILE_MANAGER, queryProfile, { namespace: "urn:pbm" }), "PbmQueryProfile");
    expect(bare.ok ? "ok" : bare.fault.code).toBe("NotAuthenticated");
    const wrong = await send(buildEnvelope("PbmQueryProfile", PROFILE_MANAGER, queryProfile, { namespace: "urn:pbm", header: { vcSessionCookie: "no-such-session" } }), "PbmQueryProfile");
    expect(wrong.ok ? "ok" : wrong.fault.code).toBe("NotAuthenticated");
    const good = await send(buildEnvelope("PbmQueryProfile", PROFILE_MANAGER, queryProfile, { namespace: "urn:pbm", header: { vcSessionCookie: cookieValue() } }), "PbmQueryProfile");
    expect(good.ok).toBe(true);
  });

  it("PbmCheckRequirements gives a marked datastore an error and the others none; PbmQueryMatchingHub without hubs searches every datastore", async () => {
    await sim.control.markPolicyIncompatible(VSAN.id, ["LocalDS_0"]);
    const [ds0, ds1] = [datastores[0]!.value, datastores[1]!.value];
    const hub = (id: string) => `<hubsToSearch><hubType>Datastore</hubType><hubId>${id}</hubId></hubsToSearch>`;
    // PbmCheckRequirements is not in soap/pbm-types.ts (the driver does not send it): written by hand.
    const check = buildEnvelope("PbmRetrieveServiceContent", new MoRef("PbmServiceInstance", "ServiceInstance"), {}, { namespace: "urn:pbm", header: { vcSessionCookie: cookieValue() } })
      .replace(/PbmRetrieveServiceContent/g, "PbmCheckRequirements")
      .replace(
        `<_this type="PbmServiceInstance">ServiceInstance</_this>`,
        `<_this type="PbmPlacementSolver">placementSolver</_this>${hub(ds0)}${hub(ds1)}` +
          `<placementSubjectRequirement xsi:type="PbmPlacementCapabilityProfileRequirement"><profileId><uniqueId>${VSAN.id}</uniqueId></profileId></placementSubjectRequirement>`,
      );
    const out = await send(check, "PbmCheckRequirements");
    if (!out.ok) throw out.fault;
    const results = out.value as Array<{ hub: { hubId: string }; error?: { localizedMessage: string } }>;
    expect(results.map((r) => [r.hub.hubId, r.error?.localizedMessage])).toEqual([
      [ds0, `Datastore LocalDS_0 does not satisfy the requirements of storage policy ${VSAN.id}`],
      [ds1, undefined],
    ]);
    const all = await send(
      buildEnvelope("PbmQueryMatchingHub", new MoRef("PbmPlacementSolver", "placementSolver"), { profile: { uniqueId: VSAN.id } }, { namespace: "urn:pbm", header: { vcSessionCookie: cookieValue() } }),
      "PbmQueryMatchingHub",
    );
    if (!all.ok) throw all.fault;
    expect((all.value as Array<{ hubId: string }>).map((h) => h.hubId).sort()).toEqual([datastores[1]!.value, datastores[2]!.value].sort());
  });

  it("refuses a PBM request out of schema order, as vCenter's deserializer does", async () => {
    const xml = buildEnvelope("PbmQueryProfile", PROFILE_MANAGER, queryProfile, { namespace: "urn:pbm", header: { vcSessionCookie: cookieValue() } });
    const swapped = xml.replace(/(<resourceType>.*<\/resourceType>)(<profileCategory>.*<\/profileCategory>)/, "$2$1");
    expect(swapped).not.toBe(xml);
    const out = await send(swapped, "PbmQueryProfile");
    expect(out.ok ? "ok" : out.fault.code).toBe("InvalidRequest");
  });
});

describe("a VM placed by policy", () => {
  it("CreateVM_Task accepts the policy on the VM and its root disk (vmProfile, profile) on a compatible datastore", async () => {
    await sim.control.markPolicyIncompatible(VSAN.id, ["LocalDS_0"]);
    const policy = await findPolicy(client, VSAN.name);
    const [ds] = await compatibleDatastores(client, policy.id, datastores);
    expect(String(ds)).toBe(String(datastores[1]));
    const spec = buildVmConfigSpec({
      name: "policy-vm",
      datastore: "LocalDS_1",
      guestId: "otherGuest",
      numCpus: 1,
      memoryMb: 64,
      adapterType: "lsiLogic",
      rootDisk: { kind: "blank", capacityKb: 1024 },
      storagePolicyId: policy.id,
    });
    const vm = moRef.parse(await runTask(client, "CreateVM_Task", dc.vmFolder, { config: spec, pool: cluster.resourcePool }));
    expect(vm.type).toBe("VirtualMachine");
  });
});
