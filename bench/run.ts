// `npm run bench`: runs every benchmark and writes bench/results.json (committed, so
// numbers can be compared across changes). Benchmarks measure; they never fail a build.
import { writeFileSync } from "node:fs";
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
  const out = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    results,
  };
  writeFileSync(join(__dirname, "results.json"), `${JSON.stringify(out, null, 2)}\n`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
