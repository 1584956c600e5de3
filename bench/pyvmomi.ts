// Our driver against pyvmomi (Debian python3-pyvmomi), the same operations on the same
// simulator in the same run: login, listing 1,000 VMs, and a standard PortGroup on a
// 3-host cluster. Round trips come from the simulator's own statistics for both, so one
// meter counts both clients; wall times are taken inside each client (not process start).
// The result rows carry the ratio ours / pyvmomi (below 1: we do better).
// Then the Image resource (a 4 MiB monolithicSparse VMDK) against the same image cached
// the way Nova's VMware driver caches it (bench/pyvmomi_ops.py says how, call for call):
// round trips only, by method, session calls left out on both sides as in
// test/engine/round-trips.test.ts (ours runs through the engine harness, one process per
// operation, so its wall time is a process's and not comparable).
// `npm run bench -- vs-pyvmomi` runs this file alone.
import { execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configure, handle } from "../provider/handler.js";
import { VimClient } from "../provider/vsphere/client.js";
import { getDatacenter, listVms } from "../provider/vsphere/inventory.js";
import { HarnessStack, simulatorConfig, type HarnessResult } from "../test/engine/index.js";
import { buildPackageCopy } from "../test/engine/package-copy.js";
import { simOptions } from "../test/support/clients.js";
import { ImageDir } from "../test/support/images.js";
import { startVcsim, type SimulatorStats, type Vcsim } from "../test/vcsim/index.js";
import type { BenchResult } from "./run.js";

const ROUNDS = 5;
const PYTHON = "/usr/bin/python3";

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

interface Measured {
  ms: number[];
  trips: number[];
}

async function soapRequests(sim: Vcsim): Promise<number> {
  return (await sim.control.stats()).soapRequests;
}

/** Times `fn` ROUNDS times, counting SOAP requests at the simulator; `after` runs uncounted. */
async function ours(sim: Vcsim, fn: (i: number) => Promise<void>, after?: (i: number) => Promise<void>): Promise<Measured> {
  const out: Measured = { ms: [], trips: [] };
  for (let i = 0; i < ROUNDS; i++) {
    const before = await soapRequests(sim);
    const t0 = performance.now();
    await fn(i);
    out.ms.push(Math.round((performance.now() - t0) * 10) / 10);
    out.trips.push((await soapRequests(sim)) - before);
    await after?.(i);
  }
  return out;
}

function jobBase(sim: Vcsim): Record<string, unknown> {
  return {
    host: sim.info.host,
    port: sim.info.port,
    username: sim.info.username,
    password: sim.info.password,
    caFile: sim.info.caFile,
    controlUrl: sim.info.controlUrl,
  };
}

function pyvmomi(sim: Vcsim, op: string, extra: Record<string, unknown> = {}): Measured {
  const job = { op, rounds: ROUNDS, ...jobBase(sim), ...extra };
  const text = execFileSync(PYTHON, [join(__dirname, "pyvmomi_ops.py"), JSON.stringify(job)], { encoding: "utf8" });
  return JSON.parse(text.trim().split("\n").pop()!) as Measured;
}

function compare(name: string, a: Measured, b: Measured): BenchResult[] {
  const rows: BenchResult[] = [];
  for (const [unit, key] of [
    ["ms", "ms"],
    ["requests", "trips"],
  ] as const) {
    const mine = median(a[key]);
    const theirs = median(b[key]);
    rows.push({
      bench: "vs-pyvmomi",
      case: `${name}: ${key === "ms" ? "wall time" : "round trips"}`,
      unit,
      median: mine,
      samples: a[key],
      extra: { pyvmomiMedian: theirs, pyvmomiSamples: b[key], ratio: theirs === 0 ? null : Math.round((mine / theirs) * 100) / 100 },
    });
  }
  return rows;
}

export async function run(): Promise<BenchResult[]> {
  if (!existsSync(PYTHON) || !pythonHasPyvmomi()) {
    process.stderr.write("bench vs-pyvmomi: skipped (install python3-pyvmomi: apt-get install python3-pyvmomi)\n");
    return [];
  }
  const sim = await startVcsim({ tls: true, clusters: 2, hosts: 3, vms: 1000, powerOn: true });
  const out: BenchResult[] = [];
  try {
    const opts = simOptions(sim);

    out.push(
      ...compare(
        "login and logout",
        await ours(sim, async () => {
          const c = await VimClient.connect(opts);
          await c.close();
        }),
        pyvmomi(sim, "login"),
      ),
    );

    const client = await VimClient.connect(opts);
    const dc = await getDatacenter(client);
    out.push(
      ...compare(
        "list 1,000 VMs (name, power state), 100 per page",
        await ours(sim, async () => {
          const vms = await listVms(client, dc.vmFolder);
          if (vms.length !== 1000) throw new Error(`listed ${vms.length} VMs`);
        }),
        pyvmomi(sim, "listVms", { maxObjects: 100, expectVms: 1000 }),
      ),
    );
    await client.close();

    // The resource's own check + create, through the handler the provider process loads
    // (its session opened once, outside the count, as in a running `pulumi up`).
    const config: Record<string, string> = {
      "vmware:hostIp": sim.info.host,
      "vmware:hostPort": String(sim.info.port),
      "vmware:hostUsername": sim.info.username,
      "vmware:hostPassword": sim.info.password,
      "vmware:caFile": sim.info.caFile!,
      "vmware:clusterName": "DC0_C1",
    };
    await configure({ config: { get: (k: string) => config[k] } });
    await handle("PortGroup", "check", {}, { name: "bench-warm", vlanId: 1 });
    const made: Array<{ id: string; outs: Record<string, unknown> }> = [];
    out.push(
      ...compare(
        "standard PortGroup on a 3-host cluster (check + create)",
        await ours(
          sim,
          async (i) => {
            const checked = (await handle("PortGroup", "check", {}, { name: `bench-ours-${i}`, vlanId: 100 })) as { inputs: Record<string, unknown> };
            made.push((await handle("PortGroup", "create", checked.inputs)) as { id: string; outs: Record<string, unknown> });
          },
          async (i) => {
            const m = made[i]!;
            await handle("PortGroup", "delete", m.id, m.outs);
          },
        ),
        pyvmomi(sim, "portGroup", { cluster: "DC0_C1", name: "bench-py", vlanId: 100 }),
      ),
    );
  } finally {
    await sim.stop();
  }
  out.push(...(await imageComparison()));
  return out;
}

// --- Image ---------------------------------------------------------------------------

/** Our harness rounds: each is 4 engine runs of a few seconds, and the counts do not vary. */
const IMAGE_ROUNDS = 3;
const SESSION_METHODS = new Set(["RetrieveServiceContent", "Login", "Logout", "SessionIsActive", "CurrentTime"]);
type Methods = Record<string, number>;
interface Counted {
  trips: number[];
  methods: Methods[];
  /** HTTP PUTs to /folder (not SOAP, so not in trips). */
  uploads: number[];
}
const IMAGE_OPS = [
  ["create", "create (check + create) / Nova spawn, image not cached"],
  ["cached", "up with nothing to change / Nova spawn, image cached"],
  ["refresh", "refresh / Nova's cache-hit test"],
  ["delete", "delete / Nova's image-cache aging, the pass that marks it and the one that deletes it"],
] as const;
type ImageOp = (typeof IMAGE_OPS)[number][0];

/** API calls by method between two readings of the statistics, session calls left out. */
function apiMethods(before: SimulatorStats, after: SimulatorStats): Methods {
  const out: Methods = {};
  for (const [m, n] of Object.entries(after.methods)) {
    const d = n - (before.methods[m] ?? 0);
    if (d > 0 && !SESSION_METHODS.has(m)) out[m] = d;
  }
  return out;
}

const total = (m: Methods) => Object.values(m).reduce((a, b) => a + b, 0);

async function oursImage(sim: Vcsim, vmdk: string, dir: string): Promise<Record<ImageOp, Counted>> {
  const out = Object.fromEntries(IMAGE_OPS.map(([op]) => [op, { trips: [], methods: [], uploads: [] }])) as unknown as Record<ImageOp, Counted>;
  // A private build for the provider process: dist/ may be another run's at the same time.
  const copy = buildPackageCopy("test/engine/programs/images.ts");
  try {
    for (let i = 0; i < IMAGE_ROUNDS; i++) {
      const stack = new HarnessStack({
        program: copy.program,
        cwd: copy.dir,
        stateFile: join(dir, `ours-${i}.json`),
        config: { ...simulatorConfig(sim), "imgtest:images": JSON.stringify({ img: { source: vmdk } }) },
        secretKeys: ["vmware:hostPassword"],
      });
      const runs: Array<[ImageOp, () => Promise<HarnessResult>]> = [
        ["create", () => stack.up()],
        ["cached", () => stack.up()],
        ["refresh", () => stack.refresh()],
        ["delete", () => stack.destroy()],
      ];
      for (const [op, fn] of runs) {
        const before = await sim.control.stats();
        const result = await fn();
        const after = await sim.control.stats();
        if (result.errors.length) throw new Error(`bench: Image ${op} failed: ${result.errors.join("; ")}`);
        // The counts stand only if the work was done: the bytes went up, the image went away.
        if (op === "create" && after.uploadBytes - before.uploadBytes < statSync(vmdk).size) throw new Error("bench: the Image create uploaded less than the file");
        if (op === "delete" && stack.state().resources.some((r) => r.type.endsWith("Image"))) throw new Error("bench: the Image is still in the state after destroy");
        const methods = apiMethods(before, after);
        out[op].methods.push(methods);
        out[op].trips.push(total(methods));
        out[op].uploads.push(after.uploads - before.uploads);
      }
    }
  } finally {
    copy.cleanup();
  }
  return out;
}

/** Nova's side; its delete is two aging passes (`mark`, then `delete` a day later), summed. */
function pyvmomiImage(sim: Vcsim, vmdk: string, warm = false): { ops: Record<ImageOp, Counted>; passes: Record<"mark" | "delete", Counted> } {
  const job = { ...jobBase(sim), op: "image", rounds: ROUNDS, cluster: "DC0_C0", source: vmdk, cachePrefix: "nova", imagePrefix: "py", warm };
  const text = execFileSync(PYTHON, [join(__dirname, "pyvmomi_ops.py"), JSON.stringify(job)], { encoding: "utf8" });
  const { ops } = JSON.parse(text.trim().split("\n").pop()!) as { ops: Record<ImageOp | "mark", Counted> };
  for (const c of Object.values(ops)) {
    c.methods = c.methods.map((m) => Object.fromEntries(Object.entries(m).filter(([k]) => !SESSION_METHODS.has(k))));
    c.trips = c.methods.map(total);
  }
  const passes = { mark: ops.mark, delete: ops.delete };
  const both = ops.mark.methods.map((m, i) => {
    const sum: Methods = { ...m };
    for (const [k, n] of Object.entries(ops.delete.methods[i]!)) sum[k] = (sum[k] ?? 0) + n;
    return sum;
  });
  const uploads = ops.mark.uploads.map((n, i) => n + ops.delete.uploads[i]!);
  return { ops: { ...ops, delete: { trips: both.map(total), methods: both, uploads } }, passes };
}

/** The comparison as a table on stderr: the rows' totals, then each method side by side. */
function printImageTable(rows: Array<{ label: string; ours: Methods; theirs: Methods; warm: Methods; puts: [number, number] }>): void {
  const lines = ["Image round trips (session calls left out): ours / Nova's way with pyvmomi (a long-running Nova's caches full: n)"];
  for (const r of rows) {
    lines.push(`  ${r.label}: ${total(r.ours)} / ${total(r.theirs)} (${total(r.warm)}) SOAP calls, ${r.puts[0]} / ${r.puts[1]} HTTP PUTs`);
    for (const m of [...new Set([...Object.keys(r.ours), ...Object.keys(r.theirs)])].sort()) lines.push(`    ${m}: ${r.ours[m] ?? 0} / ${r.theirs[m] ?? 0} (${r.warm[m] ?? 0})`);
  }
  process.stderr.write(`${lines.join("\n")}\n`);
}

/** The methods of the round whose total is the median (the rounds agree in practice). */
function medianMethods(c: Counted): Methods {
  const m = median(c.trips);
  return c.methods[c.trips.indexOf(m)]!;
}

async function imageComparison(): Promise<BenchResult[]> {
  // The topology of test/engine/round-trips.test.ts, so the numbers are the same ones.
  const sim = await startVcsim({ tls: true, hosts: 3, vms: 1, powerOn: false });
  const images = await ImageDir.create();
  const dir = await mkdtemp(join(tmpdir(), "bench-pyvmomi-image-"));
  try {
    // 4 MiB of capacity, 1 MiB of random data: the round-trips test's image.
    const vmdk = await images.convertedVmdk("rt.vmdk", "monolithicSparse", { adapter: "lsilogic", sizeMiB: 4, dataMiB: 1 });
    const ours = await oursImage(sim, vmdk, dir);
    const { ops: theirs, passes } = pyvmomiImage(sim, vmdk);
    // Nova as a long-running service: its caches (cluster, datacenter, browsers) full.
    const { ops: warm } = pyvmomiImage(sim, vmdk, true);
    printImageTable(IMAGE_OPS.map(([op, label]) => ({ label, ours: medianMethods(ours[op]), theirs: medianMethods(theirs[op]), warm: medianMethods(warm[op]), puts: [median(ours[op].uploads), median(theirs[op].uploads)] })));
    return IMAGE_OPS.map(([op, label]) => {
      const mine = median(ours[op].trips);
      const py = median(theirs[op].trips);
      return {
        bench: "vs-pyvmomi",
        case: `Image, 4 MiB sparse VMDK: ${label}: round trips`,
        unit: "requests",
        median: mine,
        samples: ours[op].trips,
        extra: {
          pyvmomiMedian: py,
          pyvmomiSamples: theirs[op].trips,
          ratio: py === 0 ? null : Math.round((mine / py) * 100) / 100,
          methods: medianMethods(ours[op]),
          pyvmomiMethods: medianMethods(theirs[op]),
          pyvmomiWarmCaches: median(warm[op].trips),
          pyvmomiWarmCachesMethods: medianMethods(warm[op]),
          httpPuts: median(ours[op].uploads),
          pyvmomiHttpPuts: median(theirs[op].uploads),
          ...(op === "delete" ? { pyvmomiPasses: { mark: medianMethods(passes.mark), delete: medianMethods(passes.delete) } } : {}),
        },
      };
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
    await images.cleanup();
    await sim.stop();
  }
}

function pythonHasPyvmomi(): boolean {
  try {
    execFileSync(PYTHON, ["-c", "import pyVmomi"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
