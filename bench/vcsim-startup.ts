// How long the embedded simulator takes to print its ready line (target: < 10 s for
// 2 clusters x 3 hosts x 1,000 VMs with TLS, the "done when").
import { startVcsim, type VcsimOptions } from "../test/vcsim/index.js";
import type { BenchResult } from "./run.js";

const CASES: Array<{ name: string; options: VcsimOptions; targetMs?: number }> = [
  { name: "default (1 cluster x 3 hosts, no VMs)", options: {} },
  { name: "2 clusters x 3 hosts, 1,000 VMs, TLS", options: { clusters: 2, hosts: 3, vms: 1000, tls: true }, targetMs: 10_000 },
  { name: "2 clusters x 3 hosts, 5,000 VMs", options: { clusters: 2, hosts: 3, vms: 5000 } },
];

export async function run(rounds = 3): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  for (const c of CASES) {
    const wall: number[] = [];
    const reported: number[] = [];
    for (let i = 0; i < rounds; i++) {
      const started = performance.now();
      const sim = await startVcsim(c.options, 120_000);
      wall.push(performance.now() - started);
      reported.push(sim.info.startupMs);
      await sim.stop();
    }
    results.push({
      bench: "vcsim-startup",
      case: c.name,
      unit: "ms",
      median: median(wall),
      samples: wall.map(Math.round),
      extra: { simulatorReportedMedianMs: median(reported) },
      ...(c.targetMs ? { target: `< ${c.targetMs}`, met: median(wall) < c.targetMs } : {}),
    });
  }
  return results;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.floor(s.length / 2)]!);
}
