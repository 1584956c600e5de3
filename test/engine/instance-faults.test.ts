// Instance creates under concurrency and injected faults, through the real provider
// process: 20 creates in one `up` (one process) and two stacks' `up`s at once (two
// processes) get distinct VNC ports and make the image's copy and the sized base on the
// target datastore once; a fault at each step of create (the image's copy, the sized
// base's extension, CreateVM_Task, the VNC move, the power on, the read-back, connection
// cuts after CreateVM_Task and PowerOnVM_Task; a full copy's growth and create) leaves
// nothing behind, and the re-run succeeds; a failed create next to a good one in the same
// `up` keeps the sized base the good one links to.
//
// The image is cached on datastore A (its Image's `datastores`), every instance goes to
// another datastore (`datastore` input) with a root disk larger than the image, so each
// create copies the image over (server-side) and makes a sized base there first.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import { DatastorePath } from "../../provider/vsphere/datastore.js";
import { getCluster, getDatacenter, listVms, type Cluster, type Datacenter } from "../../provider/vsphere/inventory.js";
import { MoRef } from "../../provider/vsphere/soap/xml.js";
import { runTask } from "../../provider/vsphere/task.js";
import { readVm } from "../../provider/vsphere/vm-read.js";
import type { VmView } from "../../provider/vsphere/vm-view.js";
import { spawnVm } from "../../provider/vsphere/vmops.js";
import { VNC_PORT_KEY, VNC_PORTS, portsTakenOn, vncPortsInUse } from "../../provider/vsphere/vnc.js";
import { simOptions } from "../support/clients.js";
import { ImageDir } from "../support/images.js";
import { startVcsim, type FaultRule, type Vcsim } from "../vcsim/index.js";
import type { HarnessStack } from "./index.js";
import { folderNames, ok, specStack, type SpecStack } from "./state-helpers.js";

const PASSWORD = "pw-InstanceFaults-5d1c";
/** One cache prefix for every stack: they share the Image's cached disk. */
const PREFIX = "ifault";
/** Long enough that the creates of one `up` (and of two) are in flight together. */
const TASK_DELAY_MS = 250;

let sim: Vcsim;
let client: VimClient;
let dc: Datacenter;
let cluster: Cluster;
let dir: string;
let images: ImageDir;
/** A: the Image's cache; B: test 1's VMs; C: the two processes'; FAULT_DS: one per fault case. */
let A: string, B: string, C: string;
let FAULT_DS: string[];
const FAULT_CASES = 11;
let DS: string[];
let imageId: string;
let base: StackWithSpec;

type Spec = { images?: Record<string, unknown>; instances?: Record<string, Record<string, unknown>> };
type StackWithSpec = SpecStack<Spec>;

const stack = (name: string, spec: Spec, config: Record<string, string> = {}): StackWithSpec =>
  specStack(sim, { dir, name, program: "test/engine/programs/instances.ts", password: PASSWORD, specKey: "insttest:spec", cachePrefix: PREFIX }, spec, config);

// `full`: an image whose instances are full copies (its linkedClone false overrides vmware:useLinkedClone).
const imageSpec = () => ({
  img: { source: sparsePath, osType: "ubuntu64Guest", datastores: [A] },
  full: { source: fullPath, osType: "ubuntu64Guest", linkedClone: false, datastores: [A] },
});
let sparsePath: string;
let fullPath: string;
let fullImageId: string;

/** An instance of a shared image by its id (another stack's Image), on `datastore`. */
const byId = (datastore: string, rootDiskGb: number, id = imageId) => ({ imageId: id, cpus: 1, memoryMb: 64, rootDiskGb, datastore });

const cacheFolder = (ds: string) => new DatastorePath(ds, `${PREFIX}_base/${imageId}`);

const names = async (path: DatastorePath) => (await folderNames(client, dc, path)) ?? [];

async function vmOf(vmId: string): Promise<VmView> {
  const view = await readVm(client, new MoRef("VirtualMachine", vmId));
  if (!view) throw new Error(`VM ${vmId} is gone`);
  return view;
}

const instanceOuts = (s: HarnessStack) =>
  s
    .state()
    .resources.filter((r) => r.type.endsWith(":Instance"))
    .map((r) => ({ name: r.name, id: r.id, vmId: (r.outputs as { vmId: string }).vmId }));

/** The ports of every VM that may run on the cluster's hosts; each must be there once. */
async function clusterPorts(): Promise<number[]> {
  return portsTakenOn(await vncPortsInUse(client), cluster.hosts);
}

async function addRules(...rules: FaultRule[]): Promise<number[]> {
  const ids: number[] = [];
  for (const r of rules) ids.push((await sim.control.addRule(r)).id);
  return ids;
}

/**
 * While `run` goes on, looks at the rules (a round trip each, a short pause between) and
 * notes when each `[rule id, seen count]` was first reached: ms since the start, or
 * undefined when never. Then resolves `run`'s result and those times.
 */
async function timeline<T>(run: Promise<T>, marks: Array<[number, number]>): Promise<[T, Array<number | undefined>]> {
  const t0 = Date.now();
  const at: Array<number | undefined> = marks.map(() => undefined);
  let running = true;
  const done = run.finally(() => (running = false));
  while (running && at.some((t) => t === undefined)) {
    const rules = await sim.control.rules();
    marks.forEach(([id, seen], i) => {
      if (at[i] === undefined && (rules.find((r) => r.id === id)?.seen ?? 0) >= seen) at[i] = Date.now() - t0;
    });
    await setTimeout(20);
  }
  return [await done, at];
}

const delays = (): FaultRule[] =>
  (["CreateVM_Task", "CopyVirtualDisk_Task", "ExtendVirtualDisk_Task"] as const).map((method) => ({ kind: "taskDelay", method, ms: TASK_DELAY_MS, times: -1 }));

beforeAll(async () => {
  sim = await startVcsim({ tls: true, clusters: 1, hosts: 2, datastores: 3 + FAULT_CASES, password: PASSWORD });
  client = await VimClient.connect(simOptions(sim));
  dc = await getDatacenter(client);
  cluster = await getCluster(client, dc, "DC0_C0");
  DS = sim.info.inventory.datacenters[0]!.datastores.filter((d) => d.startsWith("LocalDS_")).sort((a, b) => Number(a.slice(8)) - Number(b.slice(8)));
  [A, B, C] = DS as [string, string, string];
  FAULT_DS = DS.slice(3);
  expect(FAULT_DS).toHaveLength(FAULT_CASES);
  dir = mkdtempSync(join(tmpdir(), "instance-faults-"));
  images = await ImageDir.create();
  sparsePath = await images.sparseVmdk("base.vmdk", { adapter: "lsilogic", sizeMiB: 16 });
  fullPath = await images.sparseVmdk("full.vmdk", { adapter: "lsilogic", sizeMiB: 8 });
  base = stack("base", { images: imageSpec() });
  ok(await base.up());
  const idOf = (name: string) => (base.state().resources.find((r) => r.name === name)!.outputs as { imageId: string }).imageId;
  imageId = idOf("img");
  fullImageId = idOf("full");
  expect(fullImageId).not.toBe(imageId);
  // The image is on A only: every other datastore gets it by a copy during the tests.
  for (const ds of DS.slice(1)) expect(await names(cacheFolder(ds))).toEqual([]);
  expect(await names(cacheFolder(A))).toContain(`${imageId}.vmdk`);
}, 60_000);

afterAll(async () => {
  await client?.close();
  await sim?.stop();
  await images?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("Instance creates at once", () => {
  it("20 instances in one up: 20 VMs, 20 VNC ports, one copy of the image and one sized base on the target datastore", async () => {
    const instances = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`vm${i}`, { image: "img", cpus: 1, memoryMb: 64, rootDiskGb: 1, datastore: B }]));
    base.set({ images: imageSpec(), instances });
    // Each create's task runs HOLD ms and its VM shows only at the end, as vCenter's.
    const HOLD = 1500;
    const [create] = await addRules({ kind: "taskDelay", method: "CreateVM_Task", ms: HOLD, times: -1 });
    const rules = [create!, ...(await addRules(...delays().slice(1)))];
    await sim.control.resetStats();
    const [up, [first, last]] = await timeline(base.up(), [
      [create!, 1],
      [create!, 20],
    ]);
    ok(up);
    const stats = await sim.control.stats();
    const fired = await Promise.all(rules.map((id) => sim.control.rule(id)));
    await sim.control.clearRules();
    expect(up.events.filter((e) => e.op === "create")).toHaveLength(20);
    expect(fired.map((r) => [r.kind === "cutUpload" ? "" : r.method, r.fired])).toEqual([
      ["CreateVM_Task", 20],
      ["CopyVirtualDisk_Task", 2],
      ["ExtendVirtualDisk_Task", 1],
    ]);
    // The 20th CreateVM_Task came while the first was still running: all 20 were in flight at once.
    expect(last! - first!, `creates from ${first} ms to ${last} ms`).toBeLessThan(HOLD);

    const made = instanceOuts(base);
    expect(made).toHaveLength(20);
    const views = await Promise.all(made.map((m) => vmOf(m.vmId)));
    const sized = `[${B}] ${PREFIX}_base/${imageId}/${imageId}.1.vmdk`;
    for (const [i, v] of views.entries()) {
      expect(v.instanceUuid).toBe(made[i]!.id);
      expect(DatastorePath.parse(v.vmxPath).datastore).toBe(B);
      expect(v.disks[0]!.parents[0]).toBe(sized);
    }
    const ports = views.map((v) => v.vncPort);
    expect(new Set(ports).size).toBe(20);
    const all = await clusterPorts();
    expect(new Set(all).size).toBe(all.length);

    // One copy of the image (server-side, from A), one sized base (one copy + one extension).
    expect(stats.methods.CreateVM_Task).toBe(20);
    expect(stats.methods.CopyVirtualDisk_Task).toBe(2);
    expect(stats.methods.ExtendVirtualDisk_Task).toBe(1);
    const cache = await names(cacheFolder(B));
    expect(cache.filter((n) => n.endsWith(".vmdk") && !n.endsWith("-flat.vmdk"))).toEqual([`${imageId}.1.vmdk`, `${imageId}.vmdk`]);
    // Nothing left in staging.
    expect(await names(new DatastorePath(B, "vmware_temp"))).toEqual([]);
  }, 90_000);

  it("two provider processes creating at once: no VNC port twice on the cluster's hosts, one image copy and one sized base", async () => {
    // Each process's VMs by their memory size, so the simulator tells the two processes' creates apart.
    const four = (p: string, memoryMb: number) => Object.fromEntries(Array.from({ length: 4 }, (_, i) => [`${p}${i}`, { ...byId(C, 2), memoryMb }]));
    const p1 = stack("proc1", { instances: four("a", 64) });
    const p2 = stack("proc2", { instances: four("b", 96) });
    const HOLD = 3000;
    const [c1, c2] = await addRules(
      { kind: "taskDelay", method: "CreateVM_Task", args: { "config.memoryMB": "64" }, ms: HOLD, times: -1 },
      { kind: "taskDelay", method: "CreateVM_Task", args: { "config.memoryMB": "96" }, ms: HOLD, times: -1 },
    );
    await addRules(...delays().slice(1));
    const [[r1, r2], [t1, t2]] = await timeline(Promise.all([p1.up(), p2.up()]), [
      [c1!, 1],
      [c2!, 1],
    ]);
    await sim.control.clearRules();
    ok(r1);
    ok(r2);
    // Each process picked its ports while the other's first VM was still being created (not yet visible).
    expect(Math.abs(t1! - t2!), `first creates at ${t1} ms and ${t2} ms`).toBeLessThan(HOLD);
    const made = [...instanceOuts(p1), ...instanceOuts(p2)];
    expect(made).toHaveLength(8);
    const views = await Promise.all(made.map((m) => vmOf(m.vmId)));
    expect(new Set(views.map((v) => v.vncPort)).size).toBe(8);
    const all = await clusterPorts();
    expect(all.length).toBe(28);
    expect(new Set(all).size).toBe(all.length);
    const sized = `[${C}] ${PREFIX}_base/${imageId}/${imageId}.2.vmdk`;
    for (const v of views) expect(v.disks[0]!.parents[0]).toBe(sized);
    const cache = await names(cacheFolder(C));
    expect(cache.filter((n) => n.endsWith(".vmdk") && !n.endsWith("-flat.vmdk"))).toEqual([`${imageId}.2.vmdk`, `${imageId}.vmdk`]);
    expect(await names(new DatastorePath(C, "vmware_temp"))).toEqual([]);
  }, 90_000);
});

// ---------------------------------------------------------------------------
// Faults at each step of create: each case on a datastore of its own, which has neither
// the image nor a sized base before it, so every case runs the whole create (the image's
// copy from A, the sized base, the VM) and what a case leaves is its own.

/** Everything a create could leave: VMs, VM folders on any datastore, staging folders, the cache folder on `ds`. */
async function leftovers(ds: string): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = { vms: (await listVms(client, dc.vmFolder)).map((v) => v.name).sort() };
  for (const d of DS) {
    out[`[${d}]`] = (await names(new DatastorePath(d, ""))).filter((n) => n !== "vmware_temp" && n !== `${PREFIX}_base`);
    out[`[${d}] vmware_temp`] = await names(new DatastorePath(d, "vmware_temp"));
  }
  // The image's own copy may stay (it belongs to the Image, for the next VM): not what a create leaks.
  const own = new Set([`${imageId}.vmdk`, `${imageId}-flat.vmdk`]);
  out.cache = (await names(cacheFolder(ds))).filter((n) => !own.has(n));
  const fullOwn = new Set([`${fullImageId}.vmdk`, `${fullImageId}-flat.vmdk`]);
  out.fullCache = (await names(new DatastorePath(ds, `${PREFIX}_base/${fullImageId}`))).filter((n) => !fullOwn.has(n));
  return out;
}

interface FaultCase {
  step: string;
  rules: () => FaultRule[];
  error: RegExp;
}

const SIZED_GB = 1;

const cases: FaultCase[] = [
  {
    step: "the image's copy to the datastore (CopyVirtualDisk_Task from A)",
    rules: () => [
      { kind: "taskError", method: "CopyVirtualDisk_Task", args: { sourceName: `[${A}] ${PREFIX}_base/${imageId}/${imageId}.vmdk` }, fault: "NoDiskSpace", message: "injected: no room for the image" },
    ],
    error: /injected: no room for the image/,
  },
  {
    step: "the sized base's extension (ExtendVirtualDisk_Task)",
    rules: () => [{ kind: "taskError", method: "ExtendVirtualDisk_Task", fault: "NoDiskSpace", message: "injected: no room to grow" }],
    error: /injected: no room to grow/,
  },
  {
    step: "CreateVM_Task",
    rules: () => [{ kind: "taskError", method: "CreateVM_Task", fault: "InsufficientResourcesFault", message: "injected: no room for the VM" }],
    error: /injected: no room for the VM/,
  },
  {
    step: "the power on (PowerOnVM_Task)",
    rules: () => [{ kind: "taskError", method: "PowerOnVM_Task", fault: "InsufficientResourcesFault", message: "injected: cannot power on" }],
    error: /injected: cannot power on/,
  },
  {
    step: "a connection cut after PowerOnVM_Task's request (outcome unknown)",
    rules: () => [{ kind: "reset", method: "PowerOnVM_Task", phase: "after" }],
    error: /PowerOnVM_Task to .*the connection broke after the call was sent/,
  },
  {
    step: "the final read-back (RetrievePropertiesEx of the VM)",
    // readVm's read is the one selecting the hardware; nothing else in a create reads it.
    rules: () => [
      { kind: "fault", method: "RetrievePropertiesEx", args: { "specSet.propSet.pathSet": "config.hardware.numCPU" }, fault: "SystemError", fields: { reason: "injected" }, message: "injected: the read failed" },
    ],
    error: /injected: the read failed/,
  },
];

describe("Instance create under injected faults", () => {
  let linked: StackWithSpec;
  let full: StackWithSpec;
  const specs = { linked: { instances: {} } as Spec, full: { instances: {} } as Spec };
  let next = 0;

  beforeAll(() => {
    linked = stack("faults", specs.linked);
    // Full copies of the `full` image: its copy into the VM's own folder, grown there.
    full = stack("faults-full", specs.full);
  });

  /**
   * Adds an instance on a fresh datastore and runs up with `rules` installed: it fails
   * with `error` and leaves nothing of its own; the re-run without them makes the VM.
   */
  async function failThenRerun(rules: FaultRule[], error: RegExp, opts: { mode?: "linked" | "full"; during?: (running: () => boolean) => Promise<void> } = {}): Promise<void> {
    const mode = opts.mode ?? "linked";
    const s = mode === "linked" ? linked : full;
    const spec = specs[mode];
    const ds = FAULT_DS[next]!;
    const name = `f${next++}`;
    spec.instances![name] = mode === "linked" ? byId(ds, SIZED_GB) : byId(ds, SIZED_GB, fullImageId);
    s.set(spec);
    const before = await leftovers(ds);
    const ids = await addRules(...rules);
    let running = true;
    const upping = s.up().finally(() => (running = false));
    const [up] = await Promise.all([upping, opts.during?.(() => running)]);
    const fired = await Promise.all(ids.map((id) => sim.control.rule(id)));
    await sim.control.clearRules();
    expect(fired.filter((r) => r.fired > 0).length, `rules fired: ${JSON.stringify(fired.filter((r) => r.fired > 0))}`).toBeGreaterThan(0);
    expect(up.errors.join("\n")).toMatch(error);
    expect(instanceOuts(s).map((m) => m.name)).not.toContain(name);
    expect(await leftovers(ds)).toEqual(before);
    expect(await names(cacheFolder(ds))).not.toContain(`${imageId}.${SIZED_GB}.vmdk`);

    const rerun = ok(await s.up());
    expect(rerun.events.find((e) => e.key.endsWith(`::${name}`))?.op).toBe("create");
    const made = instanceOuts(s).find((m) => m.name === name)!;
    const view = await vmOf(made.vmId);
    expect(view.powerState).toBe("poweredOn");
    if (mode === "linked") expect(view.disks[0]!.parents[0]).toBe(`[${ds}] ${PREFIX}_base/${imageId}/${imageId}.${SIZED_GB}.vmdk`);
    else expect([view.disks[0]!.fileName, view.disks[0]!.parents]).toEqual([`[${ds}] ${made.id}/${made.id}.vmdk`, []]);
  }

  for (const c of cases) {
    it(`a failure at ${c.step} removes what the create made; the re-run succeeds`, async () => {
      await failThenRerun(c.rules(), c.error);
    }, 60_000);
  }

  it("a full copy: a failure at its growth (ExtendVirtualDisk_Task in the VM's folder) removes the folder and the copy; the re-run succeeds", async () => {
    await failThenRerun([{ kind: "taskError", method: "ExtendVirtualDisk_Task", fault: "NoDiskSpace", message: "injected: no room to grow the copy" }], /injected: no room to grow the copy/, { mode: "full" });
  }, 60_000);

  it("a full copy: a failure at CreateVM_Task removes the VM's folder with its copied disk; the re-run succeeds", async () => {
    await failThenRerun([{ kind: "taskError", method: "CreateVM_Task", fault: "InsufficientResourcesFault", message: "injected: no room for the full copy's VM" }], /injected: no room for the full copy's VM/, { mode: "full" });
  }, 60_000);

  it("one of two creates of one up fails: the sized base the other links to stays, the failed one leaves nothing", async () => {
    const ds = FAULT_DS[next++]!;
    // Told apart by memory size: the good one's create runs long (its VM not yet visible
    // when the bad one cleans up), the bad one's fails.
    specs.linked.instances!.pairGood = { ...byId(ds, SIZED_GB), memoryMb: 64 };
    specs.linked.instances!.pairBad = { ...byId(ds, SIZED_GB), memoryMb: 96 };
    linked.set(specs.linked);
    const before = await leftovers(ds);
    const ids = await addRules(
      { kind: "taskDelay", method: "CreateVM_Task", args: { "config.memoryMB": "64" }, ms: 1500 },
      { kind: "taskError", method: "CreateVM_Task", args: { "config.memoryMB": "96" }, fault: "InsufficientResourcesFault", message: "injected: no room for the second VM" },
    );
    const up = await linked.up();
    const fired = await Promise.all(ids.map((id) => sim.control.rule(id)));
    await sim.control.clearRules();
    expect(fired.map((r) => r.fired)).toEqual([1, 1]);
    expect(up.errors.join("\n")).toMatch(/injected: no room for the second VM/);
    const good = instanceOuts(linked).find((m) => m.name === "pairGood")!;
    expect(instanceOuts(linked).map((m) => m.name)).not.toContain("pairBad");
    const view = await vmOf(good.vmId);
    const sized = `${imageId}.${SIZED_GB}.vmdk`;
    expect(view.disks[0]!.parents[0]).toBe(`[${ds}] ${PREFIX}_base/${imageId}/${sized}`);
    // Only the good one's VM and folder are new; the sized base stays (it is in use).
    const after = await leftovers(ds);
    expect(after.vms).toEqual([...before.vms!, good.id].sort());
    expect(after[`[${ds}]`]).toEqual([...before[`[${ds}]`]!, good.id].sort());
    expect(after.cache).toEqual([...before.cache!, `${imageId}.${SIZED_GB}-flat.vmdk`, sized].sort());
    for (const d of DS) expect(after[`[${d}] vmware_temp`]).toEqual(before[`[${d}] vmware_temp`]);

    const rerun = ok(await linked.up());
    expect(rerun.events.find((e) => e.key.endsWith("::pairBad"))?.op).toBe("create");
    const bad = instanceOuts(linked).find((m) => m.name === "pairBad")!;
    expect((await vmOf(bad.vmId)).disks[0]!.parents[0]).toBe(view.disks[0]!.parents[0]);
  }, 60_000);

  it("a failure at the VNC port's move (ReconfigVM_Task after a collision) removes the VM; the re-run succeeds", async () => {
    // A rival VM (as another process's) that takes the new VM's port while its create runs.
    const rival = await spawnVm(client, {
      cluster,
      spec: { name: "rival", datastore: A, guestId: "otherGuest", numCpus: 1, memoryMb: 16, adapterType: "lsiLogic", rootDisk: { kind: "blank", capacityKb: 1024 }, nics: [] },
      vnc: false,
      powerOn: false,
    });
    // The create's port is learnt from its request: one delayed-create rule per port of the range.
    const perPort: FaultRule[] = [];
    for (let p = VNC_PORTS.first; p <= VNC_PORTS.last; p++) perPort.push({ kind: "taskDelay", method: "CreateVM_Task", args: { "config.extraConfig.value": String(p) }, ms: 1500 });
    // The rival's reconfigure is the first ReconfigVM_Task; the create's move the second.
    const rules: FaultRule[] = [...perPort, { kind: "taskError", method: "ReconfigVM_Task", nth: 2, fault: "InvalidState", message: "injected: cannot move the port" }];
    let taken: number | undefined;
    const collide = async (running: () => boolean) => {
      // Looks at the rules until one fired (each look a round trip, a pause between).
      while (taken === undefined && running()) {
        const hit = (await sim.control.rules()).find((r) => r.kind === "taskDelay" && r.fired > 0);
        if (hit?.kind === "taskDelay") taken = Number(hit.args?.["config.extraConfig.value"]);
        else await setTimeout(20);
      }
      if (taken === undefined) throw new Error("the create never reached CreateVM_Task");
      await runTask(client, "ReconfigVM_Task", rival.vm, { spec: { extraConfig: [{ key: VNC_PORT_KEY, value: String(taken) }] } });
    };
    await failThenRerun(rules, /injected: cannot move the port/, { during: collide });
    // The rival kept its port; the re-run's VM has another.
    const uses = await vncPortsInUse(client);
    expect(uses.filter((u) => u.port === taken).map((u) => u.vm.value)).toEqual([rival.vm.value]);
  }, 60_000);

  it("a connection cut after CreateVM_Task's request: the VM vCenter made is found by its instance uuid, not made twice, not leaked", async () => {
    const ds = FAULT_DS[next++]!;
    specs.linked.instances!.fcut = byId(ds, SIZED_GB);
    linked.set(specs.linked);
    const before = await leftovers(ds);
    const [id] = await addRules({ kind: "reset", method: "CreateVM_Task", phase: "after" });
    await sim.control.resetStats();
    const up = await linked.up();
    const stats = await sim.control.stats();
    const rule = await sim.control.rule(id!);
    await sim.control.clearRules();
    expect(rule.fired).toBe(1);
    ok(up);
    const made = instanceOuts(linked).find((m) => m.name === "fcut")!;
    const after = await leftovers(ds);
    // Exactly one new VM, the one in the state, with its folder; the sized base it uses.
    expect(after.vms).toEqual([...before.vms!, made.id].sort());
    expect(after[`[${ds}]`]).toEqual([...before[`[${ds}]`]!, made.id].sort());
    expect(after.cache).toEqual([...before.cache!, `${imageId}.${SIZED_GB}-flat.vmdk`, `${imageId}.${SIZED_GB}.vmdk`].sort());
    // Found by its instance uuid, not asked for again.
    expect(stats.methods.CreateVM_Task).toBe(1);
    expect(stats.methods.FindByUuid).toBeGreaterThanOrEqual(1);
    const view = await vmOf(made.vmId);
    expect(view.instanceUuid).toBe(made.id);
    expect(view.powerState).toBe("poweredOn");
    // The next up has nothing to do.
    const again = ok(await linked.up());
    expect(again.events.every((e) => e.op === "same")).toBe(true);
  }, 60_000);
});
