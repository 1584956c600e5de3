// ImageCachePolicy end to end: program -> serialized dynamic provider -> the real
// dynamic-provider process -> the sweeper -> the simulator, read back from the
// datastores (image folders, age markers). Cached images no Image resource holds are
// put in the cache by the test, as another tool or a deleted stack leaves them.
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import { DatastorePath, makeDirectory } from "../../provider/vsphere/datastore.js";
import { getDatacenter, type Datacenter } from "../../provider/vsphere/inventory.js";
import { UNKNOWN } from "../../provider/resources/handler-types.js";
import { schedule, span } from "../../provider/resources/image-cache-policy-inputs.js";
import { upload } from "../../provider/vsphere/transfer.js";
import { simOptions } from "../support/clients.js";
import { ImageDir } from "../support/images.js";
import { PROJECT_ROOT } from "../vcsim/build.mjs";
import { startVcsim, type Vcsim } from "../vcsim/index.js";
import { DynamicProviderProcess } from "./provider-process.js";
import type { HarnessStack } from "./index.js";
import { eventOf as ev, folderNames, ok, outs, resource, specStack } from "./state-helpers.js";

const PASSWORD = "pw-CachePolicy-3b9e";
let sim: Vcsim;
let client: VimClient;
let dc: Datacenter;
let dir: string;
let images: ImageDir;
let DS: string[];
let sparse: string;

beforeAll(async () => {
  sim = await startVcsim({ tls: true, clusters: 1, hosts: 2, datastores: 2, password: PASSWORD });
  client = await VimClient.connect(simOptions(sim));
  dc = await getDatacenter(client);
  DS = sim.info.inventory.datacenters[0]!.datastores.filter((d) => d.startsWith("LocalDS_")).sort();
  dir = mkdtempSync(join(tmpdir(), "cache-policy-harness-"));
  images = await ImageDir.create();
  sparse = await images.sparseVmdk("base.vmdk", { adapter: "lsilogic", sizeMiB: 16 });
});
afterAll(async () => {
  await client?.close();
  await sim?.stop();
  await images?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

type Spec = { images?: Record<string, unknown>; instances?: Record<string, Record<string, unknown>>; policies?: Record<string, Record<string, unknown>> };

const stack = (name: string, spec: Spec, config: Record<string, string> = {}) =>
  // Each stack its own cache (vmware:cachePrefix = its name), so tests cannot see each other's images.
  specStack(sim, { dir, name, program: "test/engine/programs/cache-policy.ts", password: PASSWORD, specKey: "cachetest:spec", cachePrefix: name }, spec, config);


/** Names in a datastore folder (undefined when it does not exist). */
const names = (path: DatastorePath) => folderNames(client, dc, path);

const folderOf = (ds: string, prefix: string, id: string) => new DatastorePath(ds, `${prefix}_base/${id}`);

/** A cached image no Image resource holds and no VM uses: `<prefix>_base/<id>/<id>.vmdk` of `bytes` bytes. */
async function seed(ds: string, prefix: string, id: string, bytes: number): Promise<void> {
  const folder = folderOf(ds, prefix, id);
  await makeDirectory(client, dc, folder);
  const body = Buffer.alloc(bytes, 7);
  await upload(client, dc, folder.join(`${id}.vmdk`), () => [body], { length: body.length, checksums: [] });
}

/** The report's entry of one image on one datastore: which list it is in, and the entry. */
function reported(s: HarnessStack, policy: string, ds: string, imageId: string): { list: string; entry: Record<string, any> } | undefined {
  const d = (outs(s, policy).report as Array<Record<string, any>>).find((r) => r.datastore === ds);
  for (const list of ["inUse", "marked", "aging", "removed", "wouldRemove", "kept"]) {
    const entry = (d?.[list] as Array<Record<string, any>> | undefined)?.find((i) => i.imageId === imageId);
    if (entry) return { list, entry };
  }
  return undefined;
}

const markers = (list: string[] | undefined) => (list ?? []).filter((n) => /^ts-\d{4}(-\d{2}){5}$/.test(n));

/** Until the clock is `ms` past an ISO time: what an interval waits for (time itself is under test: sweepIntervalSeconds compares against the clock). */
async function clockPast(iso: string, ms: number): Promise<void> {
  const due = Date.parse(iso) + ms;
  while (Date.now() < due) await new Promise((r) => setTimeout(r, Math.min(50, due - Date.now())));
}

describe("ImageCachePolicy through the dynamic-provider process", () => {
  it("create sweeps; an up within the interval does nothing; after the interval it sweeps again and the preview says why; delete leaves the images", async () => {
    const P = "life";
    const id = "aaaa0000000000000000000000000001";
    await seed(DS[0]!, P, id, 3000);
    const s = stack(P, { policies: { tidy: { sweepIntervalSeconds: 3600 } } }, { "vmware:removeUnusedOriginalMinimumAgeSeconds": "7200" });

    // The preview plans the create and makes nothing (no marker).
    expect(ev(ok(await s.preview()), "tidy")).toMatchObject({ op: "create", preview: true });
    expect(markers(await names(folderOf(DS[0]!, P, id)))).toEqual([]);

    const created = ok(await s.up());
    expect(ev(created, "tidy")?.op).toBe("create");
    const o = outs(s, "tidy");
    expect(resource(s, "tidy").id).toBe(`imagecache:DC0_C0:${P}`);
    // Defaults from the stack config; every datastore of the cluster swept.
    expect(o).toMatchObject({ cachePrefix: P, clusterName: "DC0_C0", datacenter: "DC0", removeUnusedBaseImages: true, removeUnusedOriginalMinimumAgeSeconds: 7200, sweepIntervalSeconds: 3600, dryRun: false });
    expect(o.sweptDatastores).toEqual(expect.arrayContaining(DS));
    expect(o.sweepDue).toBe("a new policy: first sweep");
    expect(Date.parse(o.lastSweep)).toBeGreaterThanOrEqual(Date.parse(o.lastSweepStarted));
    // The unused image was seen for the first time: marked, in the report and in its folder.
    expect(reported(s, "tidy", DS[0]!, id)).toMatchObject({ list: "marked", entry: { bytes: 3000 } });
    const marked = markers(await names(folderOf(DS[0]!, P, id)));
    expect(marked).toHaveLength(1);
    expect(o.summary).toMatchObject({ images: 1, marked: 1, removed: 0, bytesFreed: 0 });
    // The program's export carries the summary too.
    expect((created.outputs.policies as Record<string, any>).tidy.summary.marked).toBe(1);

    // Within the interval: nothing to do, nothing done.
    expect(ev(ok(await s.preview()), "tidy")?.op).toBe("same");
    expect(ev(ok(await s.up()), "tidy")?.op).toBe("same");
    expect(outs(s, "tidy").lastSweep).toBe(o.lastSweep);

    // A changed input is an update, and an update sweeps: the image is now aging (its marker kept).
    s.set({ policies: { tidy: { sweepIntervalSeconds: 1 } } });
    const changed = ok(await s.preview());
    expect(ev(changed, "tidy")).toMatchObject({ op: "update", preview: true });
    expect(ev(changed, "tidy")?.detailedDiff).toMatchObject({ sweepIntervalSeconds: { kind: "UPDATE", inputDiff: true }, sweepDue: { kind: "UPDATE" }, lastSweep: { kind: "UPDATE", inputDiff: false } });
    expect(ev(ok(await s.up()), "tidy")?.op).toBe("update");
    const second = outs(s, "tidy");
    expect(Date.parse(second.lastSweep)).toBeGreaterThan(Date.parse(o.lastSweep));
    expect(second.sweepDue).toBe("inputs changed (sweepIntervalSeconds): sweep with the new settings");
    expect(reported(s, "tidy", DS[0]!, id)).toMatchObject({ list: "aging", entry: { bytes: 3000 } });
    const aging = reported(s, "tidy", DS[0]!, id)!.entry;
    expect(Date.parse(aging.removableAfter) - Date.parse(aging.markedAt)).toBe(7200_000);
    expect(markers(await names(folderOf(DS[0]!, P, id)))).toEqual(marked);

    // The interval passes: with no input changed, an up is an update again. The preview
    // (check and diff, as the engine calls them) says why in sweepDue.
    await clockPast(second.sweepRequestedAt, 1000);
    const r = resource(s, "tidy");
    const proc = await DynamicProviderProcess.start(PROJECT_ROOT);
    try {
      await proc.configure(s.opts.config);
      // The program's inputs as it sends them (defaults come from config).
      const checked = await proc.check(r.urn, r.inputs, { __provider: r.inputs.__provider, sweepIntervalSeconds: 1 });
      expect(checked.failures).toEqual([]);
      expect(checked.inputs.sweepDue).toMatch(new RegExp(`^last sweep \\d+s ago \\(${second.sweepRequestedAt.replace(/[.]/g, "\\.")}\\), interval 1s: sweep again$`));
      const diff = await proc.diff(r.urn, r.id, r.outputs, checked.inputs);
      expect(diff).toMatchObject({ changes: "some", replaces: [] });
      expect(diff.detailedDiff).toEqual({ sweepDue: { kind: "UPDATE", inputDiff: true }, lastSweep: { kind: "UPDATE", inputDiff: false } });
      // Read from the id alone (import): the cluster and cache from the id; a check after it finds no sweep recorded.
      const imported = await proc.read(r.urn, r.id, { __provider: r.outputs.__provider }, {});
      const { __provider: _provider, ...importedProps } = imported.props;
      expect({ id: imported.id, props: importedProps }).toEqual({ id: r.id, props: { clusterName: "DC0_C0", cachePrefix: P } });
      const fresh = await proc.check(r.urn, imported.props, r.inputs);
      expect(fresh.inputs.sweepDue).toBe("no sweep recorded: sweep now");
      await expect(proc.read(r.urn, "not-a-policy-id", { __provider: r.outputs.__provider }, {})).rejects.toThrow(/is not imagecache:<clusterName>:<cachePrefix>/);
    } finally {
      await proc.stop();
    }
    // Another vmware:cachePrefix is another cache: a replacement, named in the detailed diff
    // (a process of its own: the host configures each provider object once).
    const other = await DynamicProviderProcess.start(PROJECT_ROOT);
    try {
      await other.configure({ ...s.opts.config, "vmware:cachePrefix": "other" });
      // What the program sends: its own inputs only (the defaults come from config).
      const moved = await other.check(r.urn, r.inputs, { __provider: r.inputs.__provider, sweepIntervalSeconds: 1 });
      expect(moved.inputs).toMatchObject({ cachePrefix: "other", sweepDue: "inputs changed (cachePrefix): sweep with the new settings" });
      const replace = await other.diff(r.urn, r.id, r.outputs, moved.inputs);
      expect(replace).toMatchObject({ changes: "some", replaces: ["cachePrefix"] });
      expect(replace.detailedDiff).toMatchObject({ cachePrefix: { kind: "UPDATE_REPLACE" }, sweepDue: { kind: "UPDATE" } });
    } finally {
      await other.stop();
    }
    const again = ok(await s.up());
    expect(ev(again, "tidy")).toMatchObject({ op: "update", detailedDiff: { sweepDue: { kind: "UPDATE" }, lastSweep: { kind: "UPDATE" } } });
    const third = outs(s, "tidy");
    expect(Date.parse(third.lastSweep)).toBeGreaterThan(Date.parse(second.lastSweep));
    expect(third.sweepDue).toMatch(/^last sweep \d+s ago .*interval 1s: sweep again$/);

    // Refresh keeps the state as it is.
    const refreshed = ok(await s.refresh());
    expect(ev(refreshed, "tidy")?.op).toBe("same");

    // Delete removes the policy only: the image and its marker stay.
    expect(ev(ok(await s.destroy()), "tidy")?.op).toBe("delete");
    expect(await names(folderOf(DS[0]!, P, id))).toEqual([`${id}.vmdk`, ...marked].sort());
  });

  it("keeps an image an Instance uses, marks a young unused one, removes one unused past the minimum age; a dry run changes nothing", async () => {
    const P = "aging";
    const old = "bbbb0000000000000000000000000001";
    const young = "bbbb0000000000000000000000000002";
    await seed(DS[0]!, P, old, 5000);
    const base = { images: { img: { source: sparse } }, instances: { vm: { image: "img", cpus: 1, memoryMb: 64, powerState: "off" } } };
    const policy = (p: Record<string, unknown>) => ({ ...base, policies: { p: { dependsOnInstances: true, ...p } } });

    // A dry run first: it reports a marker it would make, and makes none.
    const s = stack(P, policy({ dryRun: true, removeUnusedOriginalMinimumAgeSeconds: 0 }));
    ok(await s.up());
    const imageId = outs(s, "img").imageId as string;
    const imageDs = Object.keys(outs(s, "img").cached)[0]!;
    const vmName = resource(s, "vm").id;
    expect(reported(s, "p", DS[0]!, old)).toMatchObject({ list: "marked" });
    expect(markers(await names(folderOf(DS[0]!, P, old)))).toEqual([]);
    // The Instance's image: in use, by the VM (its name is its instance uuid).
    expect(reported(s, "p", imageDs, imageId)).toEqual({ list: "inUse", entry: expect.objectContaining({ users: [vmName] }) });

    // For real, with an hour's minimum age: the unused image gets its age marker.
    s.set(policy({ removeUnusedOriginalMinimumAgeSeconds: 3600 }));
    ok(await s.up());
    expect(reported(s, "p", DS[0]!, old)).toMatchObject({ list: "marked" });
    const oldMarker = markers(await names(folderOf(DS[0]!, P, old)));
    expect(oldMarker).toHaveLength(1);

    // A young one appears; with a minimum age of 0 the marked one is old enough and goes
    // whole, the young one (no marker yet) is marked. The used image stays.
    await seed(DS[0]!, P, young, 2000);
    // What a crashed upload left: a staging folder. With no grace period it is stale already.
    const staging = new DatastorePath(DS[1]!, `vmware_temp/${randomUUID()}`);
    await makeDirectory(client, dc, staging);
    s.set(policy({ removeUnusedOriginalMinimumAgeSeconds: 0, stagingGraceSeconds: 0 }));
    ok(await s.up());
    expect(outs(s, "p").report.find((d: any) => d.datastore === DS[1]).stagingCleaned).toEqual([staging.toString()]);
    expect(await names(staging)).toBeUndefined();
    expect(reported(s, "p", DS[0]!, old)).toMatchObject({ list: "removed", entry: { bytes: 5000 } });
    expect(reported(s, "p", DS[0]!, young)).toMatchObject({ list: "marked" });
    expect(outs(s, "p").summary).toMatchObject({ removed: 1, marked: 1, inUse: 1, bytesFreed: 5000, stagingCleaned: 1 });
    expect(outs(s, "p").report.find((d: any) => d.datastore === DS[0]).bytesFreed).toBe(5000);
    expect(await names(folderOf(DS[0]!, P, old))).toBeUndefined();
    expect(markers(await names(folderOf(DS[0]!, P, young)))).toHaveLength(1);
    expect(await names(folderOf(imageDs, P, imageId))).toContain(`${imageId}.vmdk`);
    expect(reported(s, "p", imageDs, imageId)).toMatchObject({ list: "inUse", entry: { users: [vmName] } });

    // A dry run now would remove the young one (marked, age >= 0): it says so and deletes nothing.
    s.set(policy({ removeUnusedOriginalMinimumAgeSeconds: 0, stagingGraceSeconds: 0, dryRun: true }));
    ok(await s.up());
    expect(reported(s, "p", DS[0]!, young)).toMatchObject({ list: "wouldRemove", entry: { bytes: 2000 } });
    expect(outs(s, "p").summary).toMatchObject({ wouldRemove: 1, removed: 0, bytesFreed: 0 });
    expect(await names(folderOf(DS[0]!, P, young))).toContain(`${young}.vmdk`);

    ok(await s.destroy());
    // The policy's delete took nothing: the young image is still there (the Image's own delete removed its copy).
    expect(await names(folderOf(DS[0]!, P, young))).toContain(`${young}.vmdk`);
  });

  it("a delete that fails is in the report and leaves the image; the resource does not fail, and the next sweep (interval 0: every up) removes it", async () => {
    const P = "faults";
    const id = "cccc0000000000000000000000000001";
    await seed(DS[1]!, P, id, 4000);
    // Only the datastore vmware:datastoreRegex names is swept (the default recorded in the inputs).
    const s = stack(P, { policies: { p: { removeUnusedOriginalMinimumAgeSeconds: 0, sweepIntervalSeconds: 0 } } }, { "vmware:datastoreRegex": DS[1]! });
    ok(await s.up());
    expect(outs(s, "p")).toMatchObject({ datastoreRegex: DS[1], sweptDatastores: [DS[1]] });
    expect(outs(s, "p").report.map((d: any) => d.datastore)).toEqual([DS[1]]);
    expect(reported(s, "p", DS[1]!, id)).toMatchObject({ list: "marked" });
    const rule = await sim.control.addRule({ kind: "taskError", method: "DeleteDatastoreFile_Task", args: { name: `[${DS[1]}] ${P}_base/${id}` }, fault: "FileLocked", message: "injected: locked" });
    try {
      // No input changed: interval 0 makes this up an update that sweeps.
      expect(ev(ok(await s.up()), "p")?.op).toBe("update");
      expect((await sim.control.rule(rule.id)).fired).toBe(1);
    } finally {
      await sim.control.clearRules();
    }
    const failed = outs(s, "p");
    expect(failed.report.find((d: any) => d.datastore === DS[1]).errors).toEqual([expect.stringMatching(new RegExp(`^image ${id}: .*locked`))]);
    expect(failed.summary).toMatchObject({ errors: 1, removed: 0, bytesFreed: 0 });
    expect(await names(folderOf(DS[1]!, P, id))).toContain(`${id}.vmdk`);
    ok(await s.up());
    expect(reported(s, "p", DS[1]!, id)).toMatchObject({ list: "removed", entry: { bytes: 4000 } });
    expect(outs(s, "p").summary).toMatchObject({ errors: 0, removed: 1, bytesFreed: 4000 });
    expect(await names(folderOf(DS[1]!, P, id))).toBeUndefined();
    ok(await s.destroy());
  });

  it("round trips: an up with no sweep due and a destroy call vCenter not at all", async () => {
    const P = "rt";
    await seed(DS[0]!, P, "dddd0000000000000000000000000001", 1000);
    const s = stack(P, { policies: { p: {} } });
    await sim.control.resetStats();
    ok(await s.up());
    const created = await sim.control.stats();
    console.log(`ImageCachePolicy create over ${DS.length} datastores: ${created.soapRequests} SOAP requests ${JSON.stringify(created.methods)}`);
    await sim.control.resetStats();
    expect(ev(ok(await s.up()), "p")?.op).toBe("same");
    expect((await sim.control.stats()).soapRequests).toBe(0);
    await sim.control.resetStats();
    ok(await s.destroy());
    expect((await sim.control.stats()).soapRequests).toBe(0);
  });

  it("previews a new stack whose policy's datastores are an Image's output (unknown), then sweeps them", async () => {
    const s = stack("unknowns", { images: { img: { source: sparse } }, policies: { p: { datastoresOfImage: "img" } } });
    const preview = ok(await s.preview());
    expect(ev(preview, "p")).toMatchObject({ op: "create", preview: true });
    ok(await s.up());
    const imageDs = Object.keys(outs(s, "img").cached);
    expect(outs(s, "p")).toMatchObject({ datastores: imageDs, sweptDatastores: imageDs });
    // The Image's copy is held by it: kept, not aged.
    expect(reported(s, "p", imageDs[0]!, outs(s, "img").imageId)).toMatchObject({ list: "kept", entry: { holders: [expect.any(String)] } });

    // An existing policy whose datastores become unknown (the Image replaced, at preview): check
    // neither fails nor decides the sweep, and diff leaves the decision to the engine.
    const r = resource(s, "p");
    const proc = await DynamicProviderProcess.start(PROJECT_ROOT);
    try {
      await proc.configure(s.opts.config);
      const checked = await proc.check(r.urn, r.inputs, { __provider: r.inputs.__provider, datastores: UNKNOWN });
      expect(checked.failures).toEqual([]);
      expect(checked.inputs).toMatchObject({ datastores: UNKNOWN, sweepDue: UNKNOWN, sweepRequestedAt: UNKNOWN });
      expect(await proc.diff(r.urn, r.id, r.outputs, checked.inputs)).toMatchObject({ changes: "unknown", replaces: [] });
      // Known again and the same: no sweep due, no change.
      const same = await proc.check(r.urn, r.inputs, { __provider: r.inputs.__provider, datastores: r.inputs.datastores });
      expect(same.inputs).toMatchObject({ sweepDue: r.inputs.sweepDue, sweepRequestedAt: r.inputs.sweepRequestedAt });
      expect(await proc.diff(r.urn, r.id, r.outputs, same.inputs)).toMatchObject({ changes: "none" });
    } finally {
      await proc.stop();
    }
    ok(await s.destroy());
  });

  it("check names each bad input, what it was and what is accepted", async () => {
    const s = stack("bad", {
      policies: {
        misspelt: { sweepIntervalSecond: 60 },
        negative: { sweepIntervalSeconds: -1 },
        fraction: { removeUnusedOriginalMinimumAgeSeconds: 1.5 },
        prefix: { cachePrefix: "a/b" },
        regex: { datastoreRegex: "([" },
        both: { datastores: [DS[0]], datastoreRegex: "Local" },
        twice: { datastores: [DS[0], DS[0]] },
        missing: { datastores: ["no-such-ds"] },
        nomatch: { datastoreRegex: "zzz" },
        cluster: { clusterName: "no-such-cluster" },
      },
    });
    const r = await s.preview();
    const failures = (name: string) => ev(r, name)?.failures ?? [];
    expect(ev(r, "misspelt")?.op).toBe("check-failed");
    expect(failures("misspelt")).toEqual([{ property: "sweepIntervalSecond", reason: expect.stringContaining('did you mean "sweepIntervalSeconds"?') }]);
    expect(failures("negative")).toEqual([{ property: "sweepIntervalSeconds", reason: expect.stringMatching(/^ImageCachePolicy\.sweepIntervalSeconds = -1: want .*0 or more seconds/) }]);
    expect(failures("fraction")).toEqual([{ property: "removeUnusedOriginalMinimumAgeSeconds", reason: expect.stringMatching(/= 1\.5: want .*whole seconds/) }]);
    expect(failures("prefix")).toEqual([{ property: "cachePrefix", reason: expect.stringContaining('"a/b"') }]);
    expect(failures("regex")).toEqual([{ property: "datastoreRegex", reason: expect.stringContaining("a valid regular expression") }]);
    expect(failures("both")).toEqual([{ property: "datastoreRegex", reason: expect.stringContaining("not both") }]);
    expect(failures("twice")).toEqual([{ property: "datastores", reason: expect.stringContaining("each datastore once") }]);
    expect(failures("missing")).toEqual([{ property: "datastores", reason: expect.stringMatching(new RegExp(`"no-such-ds" not in cluster DC0_C0 \\(its datastores: .*${DS[0]}`)) }]);
    expect(failures("nomatch")).toEqual([{ property: "datastoreRegex", reason: expect.stringContaining('datastoreRegex "zzz" matches none') }]);
    expect(failures("cluster")).toEqual([{ property: "clusterName", reason: expect.stringContaining('cluster "no-such-cluster" not found') }]);
    expect(s.state().resources).toEqual([]);
  });
});

describe("ImageCachePolicy's schedule (pure)", () => {
  const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
  const inputs = { cachePrefix: "", removeUnusedBaseImages: true, removeUnusedOriginalMinimumAgeSeconds: 86400, clusterName: "c", sweepIntervalSeconds: 3600, stagingGraceSeconds: 3600, dryRun: false };
  const swept = { ...inputs, sweepDue: "a new policy: first sweep", sweepRequestedAt: at(0).toISOString() };

  it("is due at the interval's end, not a second before, and keeps the old schedule until then", () => {
    expect(schedule(swept, inputs, at(3599))).toEqual({ sweepDue: swept.sweepDue, sweepRequestedAt: swept.sweepRequestedAt, due: false });
    expect(schedule(swept, inputs, at(3600))).toEqual({
      sweepDue: `last sweep 1h ago (${at(0).toISOString()}), interval 1h: sweep again`,
      sweepRequestedAt: at(3600).toISOString(),
      due: true,
    });
    expect(schedule(swept, { ...inputs, sweepIntervalSeconds: 0 }, at(0)).due).toBe(true);
  });

  it("is due for a new policy, a changed input (named) and a state with no schedule", () => {
    expect(schedule({}, inputs, at(5))).toMatchObject({ sweepDue: "a new policy: first sweep", due: true });
    expect(schedule(swept, { ...inputs, dryRun: true, datastores: ["ds1"] }, at(5))).toMatchObject({ sweepDue: "inputs changed (datastores, dryRun): sweep with the new settings", due: true });
    expect(schedule({ clusterName: "c", cachePrefix: "" }, inputs, at(5))).toMatchObject({ sweepDue: "no sweep recorded: sweep now", due: true });
  });

  it("says a span in at most two units", () => {
    expect([0, 45_000, 60_000, 725_000, 7_380_000, 3 * 86_400_000, 90_000_000].map(span)).toEqual(["0s", "45s", "1m", "12m 5s", "2h 3m", "3d", "1d 1h"]);
  });
});
