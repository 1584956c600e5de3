// `npm run bench`: runs every benchmark and writes bench/results.json (committed, so
// numbers can be compared across changes). Benchmarks measure; they never fail a build.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";

export interface BenchResult {
  bench: string;
  case: string;
  unit: string;
  median: number;
  samples: number[];
  target?: string;
  met?: boolean;
  extra?: Record<string, unknown>;
}

const BENCHES: Record<string, () => Promise<{ run(): Promise<BenchResult[]> }>> = {
  "vcsim-startup": () => import("./vcsim-startup.js"),
  driver: () => import("./driver.js"),
  "vs-pyvmomi": () => import("./pyvmomi.js"),
  transfer: () => import("./transfer.js"),
  // 1 GiB through the Image resource in the provider process (~2 min); BENCH_LARGE=1 adds 4 GiB.
  image: () => import("./image.js"),
  // 1 vs 20 Instances at once, linked clone vs full copy, 50 ms per SOAP call (~2 min).
  instance: () => import("./instance.js"),
  // 200 cached images on 2 datastores, 2,000 VMs: round trips per datastore and wall time of a sweep (~1 min).
  "cache-sweep": () => import("./cache-sweep.js"),
};

async function main(): Promise<void> {
  const only = process.argv.slice(2);
  const results: BenchResult[] = [];
  for (const [name, load] of Object.entries(BENCHES)) {
    if (only.length && !only.includes(name)) continue;
    process.stderr.write(`bench ${name}...\n`);
    const mod = await load();
    results.push(...(await mod.run()));
  }
  for (const r of results) {
    const verdict = r.target ? ` (target ${r.target}: ${r.met ? "met" : "MISSED"})` : "";
    console.log(`${r.bench} | ${r.case}: median ${r.median} ${r.unit} [${r.samples.join(", ")}]${verdict}`);
  }
  // A run of some benches (`npm run bench -- transfer`) replaces their results and keeps the others'.
  const file = join(__dirname, "results.json");
  const ran = new Set(results.map((r) => r.bench));
  const kept = only.length && existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as { results: BenchResult[] }).results.filter((r) => !ran.has(r.bench)) : [];
  const out = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    results: [...kept, ...results],
  };
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
