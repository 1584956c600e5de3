// Datastore upload (transfer.ts) against the embedded simulator over TLS: throughput
// of a 256 MiB file (BENCH_TRANSFER_MIB) with sha256 (and with sha256 + md5) as a ratio to `curl -T` of
// the same file to the same URL with the same session cookie in the same run (the
// issue's target: >= 0.9 with sha256 on), and this process's RSS growth over its
// baseline while uploading (sampled every 20 ms; target <= 64 MB whatever the size).
import { execFile } from "node:child_process";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { VimClient } from "../provider/vsphere/client.js";
import { DatastorePath, deleteFile, makeDirectory } from "../provider/vsphere/datastore.js";
import { getDatacenter } from "../provider/vsphere/inventory.js";
import { datacenterPath, folderUrl, upload, type ChecksumAlgorithm } from "../provider/vsphere/transfer.js";
import { simOptions } from "../test/support/clients.js";
import { startVcsim } from "../test/vcsim/index.js";
import type { BenchResult } from "./run.js";

const MiB = 2 ** 20;
/** 256 MiB unless BENCH_TRANSFER_MIB says otherwise (the image bench will want 1 and 4 GiB). */
const SIZE = (Number(process.env.BENCH_TRANSFER_MIB) || 256) * MiB;
const LABEL = `${SIZE / MiB} MiB`;
const ROUNDS = 3;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function writeRandomFile(path: string, size: number): Promise<void> {
  const out = createWriteStream(path);
  for (let left = size; left > 0; left -= 4 * MiB) {
    if (!out.write(randomBytes(Math.min(left, 4 * MiB)))) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

/** Runs fn while sampling RSS; returns its time and the peak RSS growth over the baseline. */
async function withRss(fn: () => Promise<void>): Promise<{ ms: number; rssGrowthMiB: number }> {
  (globalThis as { gc?: () => void }).gc?.();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const t0 = performance.now();
  try {
    await fn();
  } finally {
    clearInterval(timer);
  }
  const ms = performance.now() - t0;
  peak = Math.max(peak, process.memoryUsage().rss);
  return { ms, rssGrowthMiB: Math.round(((peak - baseline) / MiB) * 10) / 10 };
}

export async function run(): Promise<BenchResult[]> {
  const sim = await startVcsim({ tls: true });
  const dir = await mkdtemp(join(tmpdir(), "bench-transfer-"));
  const out: BenchResult[] = [];
  try {
    const file = join(dir, "image.bin");
    await writeRandomFile(file, SIZE);
    const client = await VimClient.connect(simOptions(sim));
    const dc = await getDatacenter(client);
    const folder = new DatastorePath("LocalDS_0", "bench");
    await makeDirectory(client, dc, folder);
    const target = folder.join("image.bin");
    const url = client.http.origin + folderUrl(await datacenterPath(client, dc), target);

    const curl = async () => {
      const { stdout } = await promisify(execFile)("curl", [
        "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-T", file,
        "--cacert", sim.info.caFile ?? "", "-H", `Cookie: ${client.http.cookie ?? ""}`, url,
      ]);
      if (!stdout.startsWith("2")) throw new Error(`curl -T: HTTP ${stdout}`);
    };
    const ours = (checksums: ChecksumAlgorithm[]) => async () => {
      const r = await upload(client, dc, target, createReadStream(file, { highWaterMark: MiB }), { length: SIZE, checksums });
      if (r.bytes !== SIZE) throw new Error(`uploaded ${r.bytes} bytes`);
    };

    const cases: Array<[string, () => Promise<void>]> = [
      ["curl -T", curl],
      ["upload, no checksum", ours([])],
      ["upload, sha256", ours(["sha256"])],
      ["upload, sha256 + md5", ours(["sha256", "md5"])],
    ];
    const samples = new Map<string, Array<{ ms: number; rssGrowthMiB: number }>>(cases.map(([n]) => [n, []]));
    // Interleaved rounds: a slow moment of the machine hits every case alike.
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, fn] of cases) {
        samples.get(name)!.push(await withRss(fn));
        await deleteFile(client, dc, target);
      }
    }
    const mibps = (ms: number) => Math.round((SIZE / MiB / (ms / 1000)) * 10) / 10;
    const curlMiBps = median(samples.get("curl -T")!.map((s) => mibps(s.ms)));
    for (const [name] of cases) {
      const s = samples.get(name)!;
      const rates = s.map((x) => mibps(x.ms));
      out.push({ bench: "transfer", case: `${LABEL} ${name}: throughput`, unit: "MiB/s", median: median(rates), samples: rates });
      if (name === "curl -T") continue;
      const ratios = rates.map((r) => Math.round((r / curlMiBps) * 100) / 100);
      out.push({
        bench: "transfer",
        case: `${LABEL} ${name}: throughput / curl -T`,
        unit: "ratio",
        median: median(ratios),
        samples: ratios,
        ...(name === "upload, sha256" ? { target: ">= 0.9", met: median(ratios) >= 0.9 } : {}),
      });
      const rss = s.map((x) => x.rssGrowthMiB);
      out.push({ bench: "transfer", case: `${LABEL} ${name}: peak RSS growth`, unit: "MiB", median: median(rss), samples: rss, target: "<= 64", met: median(rss) <= 64 });
    }
    await client.close();
  } finally {
    await rm(dir, { recursive: true, force: true });
    await sim.stop();
  }
  return out;
}
