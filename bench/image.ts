// The Image bench (issue 8): a monolithicSparse VMDK of real random data uploaded to the
// simulator THROUGH THE IMAGE RESOURCE, in the dynamic-provider process the Pulumi
// engine runs (test/engine/provider-process.ts: Configure, Check, Create, Delete, as the
// engine calls them), against `curl -T` of the same bytes to the same datastore in the
// same run. Per size (1 GiB; 4 GiB with BENCH_LARGE=1, ~4 more minutes):
//   - create / curl -T: the Create call (what `pulumi up` waits for once Check passed):
//     a local file is hashed first (its id comes from its content), then uploaded with
//     sha256 on, then copied server-side into the cache (CopyVirtualDisk_Task);
//   - check + create / curl -T: what an `up` of a new Image takes in all;
//   - the provider process's peak RSS growth over its RSS just before the Create
//     (VmHWM after, the peak reset by /proc/<pid>/clear_refs before; target ≤ 64 MB);
//   - the same image from an HTTP URL (a local node:http server streaming the file),
//     as a ratio to the local-file case;
//   - the local file with a `checksum: sha256:...` input: its id is known, so it is read
//     once, hashed on the way (no read for a content id first).
// Two formats (BENCH_IMAGE_FORMATS=sparse,flat): a monolithicSparse VMDK, whose create
// includes vCenter's server-side copy into a flat disk (the same for any client: Nova's
// path too), and a monolithicFlat one (descriptor + -flat), whose create is
// CreateVirtualDisk_Task and the PUT of the -flat bytes: the upload path itself.
// Every create is checked: outputs sha256 and size are the file's, the simulator received
// the bytes (its upload counter), and the copy is on the datastore; each is deleted
// before the next round, or the next create would find it cached.
//   BENCH_IMAGE_MIB=64,256   other sizes (MiB; quick runs)   BENCH_IMAGE_ROUNDS=3
import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import type { ChildProcess } from "node:child_process";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import { VimClient } from "../provider/vsphere/client.js";
import { DatastorePath, deleteFile, makeDirectory, statFile } from "../provider/vsphere/datastore.js";
import { datacenterPath, getDatacenter } from "../provider/vsphere/inventory.js";
import { folderUrl } from "../provider/vsphere/transfer.js";
import { HarnessStack, simulatorConfig } from "../test/engine/index.js";
import { buildPackageCopy, type PackageCopy } from "../test/engine/package-copy.js";
import { DynamicProviderProcess } from "../test/engine/provider-process.js";
import { simOptions } from "../test/support/clients.js";
import { HttpSource } from "../test/support/http-source.js";
import { startVcsim, type Vcsim } from "../test/vcsim/index.js";
import type { BenchResult } from "./run.js";

const MiB = 2 ** 20;
const exec = promisify(execFile);
const DATASTORE = "LocalDS_0";
const PROGRAM = "test/engine/programs/images.ts";

export function benchSizesMiB(env: NodeJS.ProcessEnv = process.env): number[] {
  if (env.BENCH_IMAGE_MIB) return env.BENCH_IMAGE_MIB.split(",").map((s) => Number(s.trim())).filter((n) => Number.isSafeInteger(n) && n > 0);
  return env.BENCH_LARGE === "1" ? [1024, 4096] : [1024];
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

const round2 = (x: number) => Math.round(x * 100) / 100;
const round1 = (x: number) => Math.round(x * 10) / 10;

/** Random bytes written 4 MiB at a time: never the whole file in memory. */
export async function writeRandomFile(path: string, size: number): Promise<void> {
  const out = createWriteStream(path);
  for (let left = size; left > 0; left -= 4 * MiB) {
    if (!out.write(randomBytes(Math.min(left, 4 * MiB)))) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

/** A monolithicSparse VMDK (lsiLogic) of `sizeMiB` of random data; the raw file is removed after. */
export async function makeSparseVmdk(dir: string, sizeMiB: number): Promise<string> {
  return makeVmdk(dir, sizeMiB, "monolithicSparse");
}

/**
 * A VMDK of `sizeMiB` of random data: monolithicSparse (one file), or monolithicFlat (the
 * descriptor returned, its `-flat` extent beside it). The raw file is removed after.
 */
export async function makeVmdk(dir: string, sizeMiB: number, subformat: "monolithicSparse" | "monolithicFlat"): Promise<string> {
  const raw = join(dir, `random-${sizeMiB}M.raw`);
  const vmdk = join(dir, `random-${sizeMiB}M-${subformat === "monolithicFlat" ? "flat" : "sparse"}.vmdk`);
  await writeRandomFile(raw, sizeMiB * MiB);
  await exec("qemu-img", ["convert", "-q", "-f", "raw", "-O", "vmdk", "-o", `subformat=${subformat},adapter_type=lsilogic`, raw, vmdk]);
  await rm(raw);
  return vmdk;
}

/** The formats benched: BENCH_IMAGE_FORMATS=sparse,flat (default both). */
export function benchFormats(env: NodeJS.ProcessEnv = process.env): Array<"sparse" | "flat"> {
  const want = (env.BENCH_IMAGE_FORMATS ?? "sparse,flat").split(",").map((s) => s.trim());
  return (["sparse", "flat"] as const).filter((f) => want.includes(f));
}

export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) h.update(chunk as Buffer);
  return h.digest("hex");
}

/** `curl -T file url` with the session cookie; returns its wall time in ms. */
export async function curlUpload(file: string, url: string, opts: { cookie?: string; caFile?: string }): Promise<number> {
  const t0 = performance.now();
  const { stdout } = await exec("curl", [
    "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-T", file,
    ...(opts.caFile ? ["--cacert", opts.caFile] : []),
    ...(opts.cookie ? ["-H", `Cookie: ${opts.cookie}`] : []),
    url,
  ]);
  const ms = performance.now() - t0;
  if (!stdout.startsWith("2")) throw new Error(`curl -T ${basename(file)}: HTTP ${stdout}`);
  return ms;
}

/** VmRSS and VmHWM (peak) of a process, in bytes. */
export function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

/** Resets the process's VmHWM to its current RSS (Linux: "5" to clear_refs), so the next peak is the upload's. */
function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, "5");
}

/** The provider process's pid: the harness keeps its child private, and this bench reads its /proc entry. */
function pidOf(proc: DynamicProviderProcess): number {
  const pid = (proc as unknown as { child: ChildProcess }).child.pid;
  if (pid === undefined) throw new Error("the provider process has no pid");
  return pid;
}

/**
 * The serialized provider (`__provider`) as the Pulumi runtime writes it into a state:
 * an `up` of the test program with a 1 MiB image in the package copy, then its destroy.
 */
async function serializedImageProvider(copy: PackageCopy, config: Record<string, string>, dir: string): Promise<{ provider: string; type: string }> {
  const tiny = join(dir, "tiny.vmdk");
  await exec("qemu-img", ["create", "-q", "-f", "vmdk", "-o", "subformat=monolithicSparse", tiny, "1M"]);
  const stack = new HarnessStack({
    program: copy.program,
    cwd: copy.dir,
    stateFile: join(dir, "provider-state.json"),
    config: { ...config, "vmware:cachePrefix": "bench-provider", "imgtest:images": JSON.stringify({ tiny: { source: tiny } }) },
    secretKeys: ["vmware:hostPassword"],
  });
  const up = await stack.up();
  if (up.errors.length) throw new Error(`bench: the provider-string stack failed: ${up.errors.join("; ")}`);
  const r = stack.state().resources[0];
  if (!r || typeof r.outputs.__provider !== "string") throw new Error("bench: no __provider in the state");
  const down = await stack.destroy();
  if (down.errors.length) throw new Error(`bench: destroying the provider-string stack failed: ${down.errors.join("; ")}`);
  return { provider: r.outputs.__provider, type: r.type };
}

interface Sample {
  checkMs: number;
  createMs: number;
  rssGrowth: number;
  baselineRss: number;
}

export async function run(): Promise<BenchResult[]> {
  const sizes = benchSizesMiB();
  const rounds = Number(process.env.BENCH_IMAGE_ROUNDS) || 3;
  const dir = await mkdtemp(join(tmpdir(), "bench-image-"));
  let sim: Vcsim | undefined;
  let copy: PackageCopy | undefined;
  let web: HttpSource | undefined;
  let proc: DynamicProviderProcess | undefined;
  let client: VimClient | undefined;
  const out: BenchResult[] = [];
  try {
    // A private build for the provider process: dist/ may be another run's at the same time.
    copy = buildPackageCopy(PROGRAM);
    sim = await startVcsim({ tls: true });
    const config = { ...simulatorConfig(sim), "vmware:datastoreRegex": DATASTORE, "vmware:cachePrefix": "bench" };
    const { provider, type } = await serializedImageProvider(copy, config, dir);
    web = await HttpSource.start(dir);

    client = await VimClient.connect(simOptions(sim));
    const dc = await getDatacenter(client);
    await makeDirectory(client, dc, new DatastorePath(DATASTORE, "bench-curl"));
    const dcPath = await datacenterPath(client, dc);

    proc = await DynamicProviderProcess.start(copy.dir);
    await proc.configure(config);
    const pid = pidOf(proc);

    for (const sizeMiB of sizes) for (const format of benchFormats()) {
      const label = sizeMiB >= 1024 ? `${sizeMiB / 1024} GiB` : `${sizeMiB} MiB`;
      const file = await makeVmdk(dir, sizeMiB, format === "flat" ? "monolithicFlat" : "monolithicSparse");
      // A flat image's bytes are its -flat extent's: that is what moves (and what curl sends); sizeBytes counts the descriptor too.
      const moved = format === "flat" ? file.replace(/\.vmdk$/, "-flat.vmdk") : file;
      const bytes = (await stat(moved)).size;
      const sourceBytes = format === "flat" ? bytes + (await stat(file)).size : bytes;
      const sha256 = await sha256File(moved);
      const curlTarget = new DatastorePath(DATASTORE, `bench-curl/${basename(moved)}`);
      const curlUrl = client.http.origin + folderUrl(dcPath, curlTarget);
      const urn = `urn:pulumi:bench::image-bench::${type}::img-${sizeMiB}-${format}`;

      const create = async (source: string, extra: Record<string, unknown> = {}): Promise<Sample> => {
        const news = { __provider: provider, source, ...extra };
        const t0 = performance.now();
        const checked = await proc!.check(urn, {}, news);
        const checkMs = performance.now() - t0;
        if (checked.failures.length) throw new Error(`bench: check failed: ${JSON.stringify(checked.failures)}`);
        await sim!.control.resetStats();
        resetPeak(pid);
        const baselineRss = memoryOf(pid).rss;
        const t1 = performance.now();
        const made = await proc!.create(urn, checked.inputs);
        const createMs = performance.now() - t1;
        const peak = memoryOf(pid).hwm;
        const o = made.outs as { sha256?: string; sizeBytes?: number; cached?: Record<string, { path: string; sizeBytes: number }> };
        // The numbers count only if the bytes really went, whole and right.
        if (o.sha256 !== sha256) throw new Error(`bench: the image's sha256 is ${o.sha256}, the file's ${sha256}`);
        if (o.sizeBytes !== sourceBytes) throw new Error(`bench: the image's sizeBytes is ${o.sizeBytes}, the files have ${sourceBytes}`);
        const uploaded = (await sim!.control.stats()).uploadBytes;
        if (uploaded < bytes) throw new Error(`bench: the simulator received ${uploaded} bytes, not the ${bytes} of the file (cached already?)`);
        const copyOn = o.cached?.[DATASTORE];
        if (!copyOn || (await statFile(client!, dc, DatastorePath.parse(copyOn.path), { details: false })) === undefined) {
          throw new Error(`bench: no cached copy on ${DATASTORE}: ${JSON.stringify(o.cached)}`);
        }
        await proc!.delete(urn, made.id, made.outs);
        return { checkMs, createMs, rssGrowth: peak - baselineRss, baselineRss };
      };

      const curl: number[] = [];
      const local: Sample[] = [];
      const http: Sample[] = [];
      const declared: Sample[] = [];
      // Interleaved rounds: a slow moment of the machine hits every case alike.
      for (let i = 0; i < rounds; i++) {
        process.stderr.write(`bench image ${label}: round ${i + 1}/${rounds}\n`);
        curl.push(await curlUpload(moved, curlUrl, { cookie: client.http.cookie, caFile: sim.info.caFile }));
        await deleteFile(client, dc, curlTarget);
        local.push(await create(file));
        http.push(await create(web.url(`/files/${basename(file)}`)));
        // A sha256 checksum names the content: no read before the upload, which hashes on the way and verifies.
        declared.push(await create(file, { checksum: `sha256:${sha256}` }));
      }
      await rm(file);
      if (moved !== file) await rm(moved);

      const mibps = (ms: number) => round1(bytes / MiB / (ms / 1000));
      const curlMiBps = median(curl.map(mibps));
      const ratioTo = (ms: number[]) => ms.map((x) => round2(mibps(x) / curlMiBps));
      const push = (r: Omit<BenchResult, "bench" | "case"> & { case: string }) => out.push({ bench: "image", ...r, case: `${label} ${format} VMDK ${r.case}` });
      push({ case: "curl -T: throughput", unit: "MiB/s", median: curlMiBps, samples: curl.map(mibps) });
      for (const [name, s] of [["a local file", local], ["an HTTP source", http], ["a local file with its sha256 checksum", declared]] as const) {
        push({ case: `Image from ${name}, create: throughput`, unit: "MiB/s", median: median(s.map((x) => mibps(x.createMs))), samples: s.map((x) => mibps(x.createMs)) });
        const ratios = ratioTo(s.map((x) => x.createMs));
        push({ case: `Image from ${name}, create / curl -T`, unit: "ratio", median: median(ratios), samples: ratios, target: ">= 0.9", met: median(ratios) >= 0.9 });
        const e2e = ratioTo(s.map((x) => x.checkMs + x.createMs));
        push({ case: `Image from ${name}, check + create / curl -T`, unit: "ratio", median: median(e2e), samples: e2e, extra: { checkMs: s.map((x) => Math.round(x.checkMs)) } });
        const rss = s.map((x) => round1(x.rssGrowth / MiB));
        push({
          case: `Image from ${name}: provider process peak RSS growth`,
          unit: "MiB",
          median: median(rss),
          samples: rss,
          target: "<= 64",
          met: Math.max(...rss) <= 64,
          extra: { baselineRssMiB: s.map((x) => round1(x.baselineRss / MiB)) },
        });
      }
      const httpToLocal = http.map((h, i) => round2(local[i]!.createMs / h.createMs));
      push({ case: "Image from an HTTP source / from a local file (create throughput)", unit: "ratio", median: median(httpToLocal), samples: httpToLocal });
    }
  } finally {
    await proc?.stop();
    await client?.close();
    await web?.close();
    await sim?.stop();
    copy?.cleanup();
    await rm(dir, { recursive: true, force: true });
  }
  return out;
}
