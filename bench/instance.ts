// The Instance bench (issue 9): 1 instance vs 20 at once from one Image, linked clone
// (the default) vs full copy (an Image with linkedClone: false), through the provider
// process, against the simulator with 50 ms of latency injected on every SOAP call
// (its fault-injection "delay" rule, every method, every time).
//
// The Image and the PortGroup are made first (no latency); then each timed `up` adds
// only the instances, so it measures their creates (the Image's check asks vCenter
// nothing, the PortGroup's one read). Each case is measured two ways:
//   - `up` through the engine harness (test/engine/index.ts): a new process for the
//     program and a new provider process, as the CLI runs them — wall time of the whole
//     `up`; an `up` with nothing to change under the same latency is measured too (the
//     harness's own start, the login, the Image's and PortGroup's checks), and the
//     difference is the creates' own time;
//   - the creates alone: Check and Create of the N instances at once in one provider
//     process already configured and logged in (what the engine sends for a program of
//     N instances), timed from the first Check to the last Create's answer.
// Round trips per instance: the simulator's per-method counts of the `up`, less the
// session calls and the no-change `up`'s, divided by N. CPU time is recorded too
// (/proc/<pid>/stat): the harness's processes' for each `up`, the provider process's for
// the creates alone, and the simulator's for both.
// A diagnostic runs the same linked-clone creates in this process through the driver's
// client with its default pool of 8 connections and with 32: whether the pool is what
// makes 20 creates slower than one.
// Target (the issue's): 20 linked clones take at most twice the time of one — stated on
// the `up` wall times, and on the two measures without the harness's own start.
// The machine's load average is recorded: other jobs on its cores move wall times.
//   BENCH_INSTANCE_ROUNDS=3   BENCH_INSTANCE_COUNTS=1,20   BENCH_INSTANCE_DELAY_MS=50
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { clientOptions, resolveConfig } from "../provider/config.js";
import { instanceHandler } from "../provider/resources/instance.js";
import { VimClient, type ClientOptions } from "../provider/vsphere/client.js";
import { HarnessStack, simulatorConfig, type HarnessResult, type StateResource } from "../test/engine/index.js";
import { buildPackageCopy, type PackageCopy } from "../test/engine/package-copy.js";
import { DynamicProviderProcess } from "../test/engine/provider-process.js";
import { ImageDir } from "../test/support/images.js";
import { startVcsim, type SimulatorStats, type Vcsim } from "../test/vcsim/index.js";
import type { BenchResult } from "./run.js";

const PROGRAM = "test/engine/programs/instances.ts";
const DATASTORE = "LocalDS_0";
const SESSION_METHODS = new Set(["RetrieveServiceContent", "Login", "Logout", "SessionIsActive", "CurrentTime"]);
const MODES = ["linked clone", "full copy"] as const;
type Mode = (typeof MODES)[number];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}
const round0 = (x: number) => Math.round(x);
const round2 = (x: number) => Math.round(x * 100) / 100;

const plural = (mode: Mode, n: number) => (n === 1 ? mode : mode === "full copy" ? "full copies" : `${mode}s`);

function apiCalls(stats: SimulatorStats): { calls: number; methods: Record<string, number> } {
  const methods = Object.fromEntries(Object.entries(stats.methods).filter(([m]) => !SESSION_METHODS.has(m)));
  return { calls: Object.values(methods).reduce((a, b) => a + b, 0), methods };
}

function counts(env: NodeJS.ProcessEnv = process.env): number[] {
  const list = (env.BENCH_INSTANCE_COUNTS ?? "1,20").split(",").map((s) => Number(s.trim()));
  return list.filter((n) => Number.isSafeInteger(n) && n > 0);
}

/** Connection pools of the diagnostic: the driver's default (transport.ts), and one more than 20 creates keep busy at once. */
const POOL_SIZES = [8, 32];

interface AloneSample {
  ms: number;
  providerCpuMs: number;
  simCpuMs: number;
}

/** /proc/<pid>/stat's fields from the state on (field 3 is index 0), times in clock ticks of 10 ms. */
function statFields(pid: number | "self"): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** User + system CPU time of a process so far, in ms. */
function cpuMs(pid: number): number {
  const f = statFields(pid);
  return (Number(f[11]) + Number(f[12])) * 10;
}

/**
 * CPU time, in ms, of this process's children that have ended and been waited for, and
 * theirs: a harness `up` (tsx, the program's process, the provider process) once it is over.
 */
function endedChildrenCpuMs(): number {
  const f = statFields("self");
  return (Number(f[13]) + Number(f[14])) * 10;
}

/** The provider process's pid: the harness keeps its child private. */
function pidOf(proc: DynamicProviderProcess): number {
  const pid = (proc as unknown as { child: ChildProcess }).child.pid;
  if (pid === undefined) throw new Error("the provider process has no pid");
  return pid;
}

interface UpSample {
  ms: number;
  /** CPU of the harness's processes (program, provider), and of the simulator. */
  harnessCpuMs: number;
  simCpuMs: number;
  calls: number;
  methods: Record<string, number>;
}

interface Spec {
  images: Record<string, unknown>;
  portGroups: Record<string, unknown>;
  instances?: Record<string, Record<string, unknown>>;
}

export async function run(): Promise<BenchResult[]> {
  const rounds = Number(process.env.BENCH_INSTANCE_ROUNDS) || 3;
  // 0: no latency injected (what the harness and the machine cost by themselves).
  const delayMs = process.env.BENCH_INSTANCE_DELAY_MS ? Number(process.env.BENCH_INSTANCE_DELAY_MS) : 50;
  const ns = counts();
  const loadBefore = loadavg().map(round2);
  const dir = await mkdtemp(join(tmpdir(), "bench-instance-"));
  let sim: Vcsim | undefined;
  let copy: PackageCopy | undefined;
  let images: ImageDir | undefined;
  let proc: DynamicProviderProcess | undefined;
  const out: BenchResult[] = [];
  try {
    // A private build for the provider process: dist/ may be another run's at the same time.
    copy = buildPackageCopy(PROGRAM);
    sim = await startVcsim({ tls: true });
    images = await ImageDir.create();
    // Two images (two contents, so two image ids): one booted as linked clones, one copied whole.
    const linkedSrc = await images.sparseVmdk("linked.vmdk", { adapter: "lsilogic", sizeMiB: 16 });
    const fullSrc = await images.sparseVmdk("full.vmdk", { adapter: "lsilogic", sizeMiB: 24 });
    const config = { ...simulatorConfig(sim), "vmware:datastoreRegex": DATASTORE, "vmware:cachePrefix": "bench" };
    const base: Spec = {
      images: { img: { source: linkedSrc, osType: "ubuntu64Guest" }, full: { source: fullSrc, osType: "ubuntu64Guest", linkedClone: false } },
      portGroups: { net: { name: "bench-net", vlanId: 10 } },
    };
    const stack = new HarnessStack({ program: copy.program, cwd: copy.dir, stateFile: join(dir, "state.json"), config, secretKeys: ["vmware:hostPassword"] });
    const up = async (spec: Spec): Promise<HarnessResult> => {
      const r = await stack.up({ ...config, "insttest:spec": JSON.stringify(spec) });
      if (r.errors.length) throw new Error(`bench instance: up failed: ${r.errors.join("; ")}`);
      return r;
    };
    const instancesOf = (mode: Mode, n: number) =>
      Object.fromEntries(
        Array.from({ length: n }, (_, i) => [`vm${i}`, { image: mode === "linked clone" ? "img" : "full", cpus: 1, memoryMb: 128, networks: [{ portGroup: "net" }] }]),
      );
    const latency = async () => {
      if (delayMs > 0) await sim!.control.addRule({ kind: "delay", method: "*", ms: delayMs, times: -1 });
    };
    const noLatency = () => sim!.control.clearRules();

    const timedUp = async (spec: Spec): Promise<UpSample & { result: HarnessResult }> => {
      await latency();
      await sim!.control.resetStats();
      const cpu0 = [endedChildrenCpuMs(), cpuMs(sim!.info.pid)];
      const t0 = performance.now();
      const result = await up(spec);
      const ms = performance.now() - t0;
      const cpu = { harnessCpuMs: endedChildrenCpuMs() - cpu0[0]!, simCpuMs: cpuMs(sim!.info.pid) - cpu0[1]! };
      const stats = await sim!.control.stats();
      await noLatency();
      return { ms, ...cpu, ...apiCalls(stats), result };
    };

    /** The instances of the state, checked as made: one per name, each VM with its own VNC port, its disk as the mode says. */
    const verify = (mode: Mode, n: number): StateResource[] => {
      const vms = stack.state().resources.filter((r) => r.type.endsWith(":Instance"));
      if (vms.length !== n) throw new Error(`bench instance: ${vms.length} instances in the state, not ${n}`);
      const ports = new Set(vms.map((r) => r.outputs.vncPort));
      if (ports.size !== n || ports.has(undefined)) throw new Error(`bench instance: VNC ports not unique: ${JSON.stringify([...ports])}`);
      for (const r of vms) {
        const o = r.outputs as { linkedCloneDisk?: boolean; rootDisk?: { parents: string[] }; powerState?: string };
        if (o.linkedCloneDisk !== (mode === "linked clone")) throw new Error(`bench instance: ${r.name} linkedCloneDisk ${o.linkedCloneDisk} for a ${mode}`);
        if (o.powerState !== "on") throw new Error(`bench instance: ${r.name} is ${o.powerState}`);
      }
      return vms;
    };

    // The Image, its copy, and the PortGroup: made once, before any timing.
    await up(base);
    const samples = new Map<string, UpSample[]>();
    const add = (key: string, s: UpSample) => samples.set(key, [...(samples.get(key) ?? []), s]);
    // An instance's checked inputs (with the serialized provider), per mode: for the creates-alone runs.
    const inputsOf = new Map<Mode, Record<string, unknown>>();

    for (let round = 0; round < rounds; round++) {
      process.stderr.write(`bench instance: round ${round + 1}/${rounds}\n`);
      add("baseline", await timedUp(base));
      for (const mode of MODES) {
        for (const n of ns) {
          const s = await timedUp({ ...base, instances: instancesOf(mode, n) });
          const made = s.result.events.filter((e) => e.op === "create").length;
          if (made !== n) throw new Error(`bench instance: ${made} creates, not ${n}`);
          const vms = verify(mode, n);
          if (!inputsOf.has(mode)) inputsOf.set(mode, vms[0]!.inputs);
          add(`${mode}|${n}`, s);
          await up(base); // removes them, without latency
        }
      }
    }

    // The creates alone, in one provider process (configured, logged in once before).
    proc = await DynamicProviderProcess.start(copy.dir);
    await proc.configure(config);
    const providerPid = pidOf(proc);
    const alone = new Map<string, AloneSample[]>();
    // A first create, untimed: the login and the cluster (kept per session) are behind every timed one.
    const warmUrn = "urn:pulumi:dev::bench::pulumi-nodejs:dynamic/vmware:Instance::warm";
    const warm = await proc.check(warmUrn, {}, inputsOf.get("linked clone")!);
    const warmed = await proc.create(warmUrn, warm.inputs);
    await proc.delete(warmUrn, warmed.id, warmed.outs);
    for (let round = 0; round < rounds; round++) {
      for (const mode of MODES) {
        const inputs = inputsOf.get(mode)!;
        for (const n of ns) {
          const urns = Array.from({ length: n }, (_, i) => `urn:pulumi:dev::bench::pulumi-nodejs:dynamic/vmware:Instance::alone${i}`);
          await latency();
          const cpu0 = [cpuMs(providerPid), cpuMs(sim.info.pid)];
          const t0 = performance.now();
          const made = await Promise.all(
            urns.map(async (urn) => {
              const checked = await proc!.check(urn, {}, inputs);
              if (checked.failures.length) throw new Error(`bench instance: check failed: ${JSON.stringify(checked.failures)}`);
              return { urn, ...(await proc!.create(urn, checked.inputs)) };
            }),
          );
          const ms = performance.now() - t0;
          const sample = { ms, providerCpuMs: cpuMs(providerPid) - cpu0[0]!, simCpuMs: cpuMs(sim.info.pid) - cpu0[1]! };
          await noLatency();
          for (const m of made) await proc.delete(m.urn, m.id, m.outs);
          alone.set(`${mode}|${n}`, [...(alone.get(`${mode}|${n}`) ?? []), sample]);
        }
      }
    }

    // Diagnostic: the same linked-clone creates in this process, through the driver's
    // client with its pool of 8 connections (the default) and with 64 — whether the
    // pool is what serializes 20 creates.
    const pool = new Map<number, Map<number, number[]>>();
    const imageOuts = stack.state().resources.find((r) => r.name === "img")!.outputs as Record<string, unknown>;
    const news = {
      image: {
        imageId: imageOuts.imageId,
        kind: imageOuts.kind,
        adapterType: imageOuts.adapterType,
        osType: imageOuts.osType,
        capacityBytes: imageOuts.capacityBytes,
        cachePrefix: imageOuts.cachePrefix,
        datastores: Object.keys((imageOuts.cached as Record<string, unknown> | undefined) ?? {}),
      },
      cpus: 1,
      memoryMb: 128,
      networks: [{ portGroup: "bench-net" }],
      resourceName: "pool",
      powerState: "on",
    };
    const cfg = resolveConfig((k) => config[`vmware:${k}` as keyof typeof config]);
    for (const connections of POOL_SIZES) {
      const client = await VimClient.connect({ ...clientOptions(cfg), connections } as ClientOptions);
      try {
        const ctx = { config: () => cfg, client: async () => client };
        const w = await instanceHandler.create(ctx, (await instanceHandler.check(ctx, {}, news)).inputs);
        await instanceHandler.delete(ctx, w.id, w.outs ?? {});
        const byN = new Map<number, number[]>();
        for (let round = 0; round < rounds; round++) {
          for (const n of ns) {
            await latency();
            const t0 = performance.now();
            const made = await Promise.all(Array.from({ length: n }, async () => instanceHandler.create(ctx, (await instanceHandler.check(ctx, {}, news)).inputs)));
            byN.set(n, [...(byN.get(n) ?? []), performance.now() - t0]);
            await noLatency();
            for (const m of made) await instanceHandler.delete(ctx, m.id, m.outs ?? {});
          }
        }
        pool.set(connections, byN);
      } finally {
        await client.close();
      }
    }

    const baseline = samples.get("baseline")!;
    const baseMs = median(baseline.map((s) => s.ms));
    const baseCalls = median(baseline.map((s) => s.calls));
    const push = (r: Omit<BenchResult, "bench">) => out.push({ bench: "instance", ...r });
    push({
      case: `up with nothing to change (Image + PortGroup), ${delayMs} ms per call: wall time`,
      unit: "ms",
      median: round0(baseMs),
      samples: baseline.map((s) => round0(s.ms)),
      extra: { apiCalls: baseCalls, harnessCpuMs: baseline.map((x) => x.harnessCpuMs), simulatorCpuMs: baseline.map((x) => x.simCpuMs), methods: baseline[0]!.methods, loadAverage: { before: loadBefore, after: loadavg().map(round2) } },
    });
    for (const mode of MODES) {
      const one = samples.get(`${mode}|${ns[0]}`)!;
      for (const n of ns) {
        const s = samples.get(`${mode}|${n}`)!;
        const ms = s.map((x) => x.ms);
        const perInstance = s.map((x) => round2((x.calls - baseCalls) / n));
        push({
          case: `${n} ${plural(mode, n)} at once, ${delayMs} ms per call: up wall time`,
          unit: "ms",
          median: round0(median(ms)),
          samples: ms.map(round0),
          extra: { createsMs: ms.map((x) => round0(x - baseMs)), harnessCpuMs: s.map((x) => x.harnessCpuMs), simulatorCpuMs: s.map((x) => x.simCpuMs), methods: s[0]!.methods },
        });
        push({ case: `${n} ${plural(mode, n)} at once: round trips per instance`, unit: "requests", median: median(perInstance), samples: perInstance });
        const a = alone.get(`${mode}|${n}`)!.map((x) => x.ms);
        push({
          case: `${n} ${plural(mode, n)} at once, ${delayMs} ms per call: Check + Create alone (one provider process)`,
          unit: "ms",
          median: round0(median(a)),
          samples: a.map(round0),
          extra: { providerCpuMs: alone.get(`${mode}|${n}`)!.map((x) => round0(x.providerCpuMs)), simulatorCpuMs: alone.get(`${mode}|${n}`)!.map((x) => round0(x.simCpuMs)) },
        });
        if (n === ns[0]) continue;
        const oneMs = median(one.map((x) => x.ms));
        const ratios = ms.map((x) => round2(x / oneMs));
        const target = mode === "linked clone" ? { target: "<= 2", met: median(ratios) <= 2 } : {};
        push({ case: `${n} ${plural(mode, n)} / 1, up wall time`, unit: "ratio", median: median(ratios), samples: ratios, ...target });
        const net = ms.map((x) => round2((x - baseMs) / (oneMs - baseMs)));
        push({ case: `${n} ${plural(mode, n)} / 1, up wall time less the no-change up`, unit: "ratio", median: median(net), samples: net, ...target, ...(target.target ? { met: median(net) <= 2 } : {}) });
        const aloneOne = median(alone.get(`${mode}|${ns[0]}`)!.map((x) => x.ms));
        const aloneRatios = a.map((x) => round2(x / aloneOne));
        push({ case: `${n} ${plural(mode, n)} / 1, Check + Create alone`, unit: "ratio", median: median(aloneRatios), samples: aloneRatios, ...target, ...(target.target ? { met: median(aloneRatios) <= 2 } : {}) });
      }
    }
    for (const [connections, byN] of pool) {
      const one = median(byN.get(ns[0]!)!);
      for (const n of ns) {
        const ms = byN.get(n)!;
        push({ case: `diagnostic, in process: ${n} ${plural("linked clone", n)} at once, ${delayMs} ms per call, pool of ${connections} connections: Check + Create`, unit: "ms", median: round0(median(ms)), samples: ms.map(round0) });
        if (n !== ns[0]) {
          const r = ms.map((x) => round2(x / one));
          push({ case: `diagnostic, in process: ${n} ${plural("linked clone", n)} / 1, pool of ${connections} connections`, unit: "ratio", median: median(r), samples: r });
        }
      }
    }
    await stack.destroy();
  } finally {
    await proc?.stop();
    await sim?.stop();
    await images?.cleanup();
    copy?.cleanup();
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}
