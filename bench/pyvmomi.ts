// Our driver against pyvmomi (Debian python3-pyvmomi), the same operations on the same
// simulator in the same run: login, listing 1,000 VMs, and a standard PortGroup on a
// 3-host cluster. Round trips come from the simulator's own statistics for both, so one
// meter counts both clients; wall times are taken inside each client (not process start).
// The result rows carry the ratio ours / pyvmomi (below 1: we do better).
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { configure, handle } from "../provider/handler.js";
import { VimClient } from "../provider/vsphere/client.js";
import { getDatacenter, listVms } from "../provider/vsphere/inventory.js";
import { simOptions } from "../test/support/clients.js";
import { startVcsim, type Vcsim } from "../test/vcsim/index.js";
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

function pyvmomi(sim: Vcsim, op: string, extra: Record<string, unknown> = {}): Measured {
  const job = {
    op,
    rounds: ROUNDS,
    host: sim.info.host,
    port: sim.info.port,
    username: sim.info.username,
    password: sim.info.password,
    caFile: sim.info.caFile,
    controlUrl: sim.info.controlUrl,
    ...extra,
  };
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
  return out;
}

function pythonHasPyvmomi(): boolean {
  try {
    execFileSync(PYTHON, ["-c", "import pyVmomi"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
