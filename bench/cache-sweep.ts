// The cache sweeper bench (issue 10): 200 cached images across 2 datastores and 2,000 VMs
// (1,900 the simulator makes, with disks of their own, and 100 linked clones, one per
// in-use image, 50 per datastore). Round trips per datastore (the simulator's count of
// SOAP requests during the sweep, halved) and wall time, for:
//   - the first sweep: 100 images in use, 100 unused and unmarked -> 100 markers made;
//   - a steady sweep: nothing to change (in use, or marked and younger than the minimum
//     age), the case cron runs most: the target is <= 10 per datastore. The VM pass is
//     paged by maximum_objects: 2,000 VMs are 20 pages at the default 100 (10 per
//     datastore on top of the datastore's own 3 searches and the half of one read of
//     all their outcomes), 2 at 1,000; both are measured;
//   - the purge: the 100 marked images a day older -> each re-checked and deleted
//     (a search and a delete task each, each batch's outcomes read in one round trip).
// The images are `<id>.vmdk` descriptors put over /folder (one PUT each, no SOAP call):
// the sweep reads names and sizes, never the bytes.
//   BENCH_SWEEP_ROUNDS=3   steady sweeps per page size
import { performance } from "node:perf_hooks";
import { sweepCache, type SweepReport } from "../provider/vsphere/cache-sweep.js";
import { VimClient } from "../provider/vsphere/client.js";
import { DatastorePath, makeDirectory } from "../provider/vsphere/datastore.js";
import { cacheLocation } from "../provider/vsphere/image-cache.js";
import { getCluster, getDatacenter, type Cluster, type Datacenter } from "../provider/vsphere/inventory.js";
import { upload } from "../provider/vsphere/transfer.js";
import { simOptions } from "../test/support/clients.js";
import { addDisk, createVm } from "../test/support/vms.js";
import { startVcsim, type Vcsim } from "../test/vcsim/index.js";
import type { BenchResult } from "./run.js";

const PREFIX = "bench";
const IMAGES_PER_DS = 100;
const IN_USE_PER_DS = 50;
const SIM_VMS = 1900;
const DAY = 86400;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function seed(client: VimClient, dc: Datacenter, cluster: Cluster, datastores: string[]): Promise<void> {
  const descriptor = Buffer.from('# Disk DescriptorFile\nversion=1\ncreateType="vmfs"\nRW 128 VMFS "x-flat.vmdk"\n');
  for (const ds of datastores) {
    const ids = Array.from({ length: IMAGES_PER_DS }, (_, i) => `img-${ds}-${String(i).padStart(3, "0")}`);
    // 8 PUTs at a time: the /folder PUT makes the image folder too.
    for (let i = 0; i < ids.length; i += 8) {
      await Promise.all(
        ids.slice(i, i + 8).map((id) => upload(client, dc, cacheLocation(ds, PREFIX, id, "disk").disk, () => [descriptor], { length: descriptor.length, checksums: [] })),
      );
    }
    for (let i = 0; i < IN_USE_PER_DS; i += 8) {
      await Promise.all(
        ids.slice(i, Math.min(i + 8, IN_USE_PER_DS)).map(async (id) => {
          const name = `lc-${id}`;
          const vm = await createVm(client, dc, cluster, name, ds);
          await makeDirectory(client, dc, new DatastorePath(ds, name), { createParents: true });
          await addDisk(client, vm, `[${ds}] ${name}/${name}.vmdk`, { fileName: cacheLocation(ds, PREFIX, id, "disk").disk.toString(), diskMode: "persistent" });
        }),
      );
    }
  }
}

interface Measured {
  report: SweepReport;
  calls: number;
  ms: number;
}

async function measure(sim: Vcsim, sweep: () => Promise<SweepReport>): Promise<Measured> {
  const before = (await sim.control.stats()).soapRequests;
  const t0 = performance.now();
  const report = await sweep();
  const ms = Math.round(performance.now() - t0);
  const calls = (await sim.control.stats()).soapRequests - before;
  const errors = report.datastores.flatMap((d) => d.errors);
  if (errors.length) throw new Error(`the sweep failed: ${errors.join("; ")}`);
  return { report, calls, ms };
}

const states = (r: SweepReport) => {
  const out: Record<string, number> = {};
  for (const d of r.datastores) for (const i of d.images) out[i.state] = (out[i.state] ?? 0) + 1;
  return out;
};

export async function run(): Promise<BenchResult[]> {
  const sim = await startVcsim({ clusters: 1, hosts: 2, datastores: 2, vms: SIM_VMS }, 180_000);
  const clients: VimClient[] = [];
  try {
    const client = await VimClient.connect(simOptions(sim));
    const big = await VimClient.connect(simOptions(sim, { maximumObjects: 1000 }));
    clients.push(client, big);
    const dc = await getDatacenter(client);
    const cluster = await getCluster(client, dc, sim.info.inventory.datacenters[0]!.clusters[0]!.name);
    const datastores = sim.info.inventory.datacenters[0]!.datastores.filter((d) => d.startsWith("LocalDS_")).slice(0, 2);
    const t0 = performance.now();
    await seed(client, dc, cluster, datastores);
    process.stderr.write(`  seeded ${datastores.length * IMAGES_PER_DS} images and ${datastores.length * IN_USE_PER_DS} linked clones in ${Math.round(performance.now() - t0)} ms\n`);

    const now = new Date();
    const base = { datacenter: dc, datastores, cachePrefix: PREFIX, removeUnused: true, minAgeSeconds: DAY };
    const sweep = (c: VimClient, over: { now?: Date; dryRun?: boolean } = {}) => () => sweepCache(c, { ...base, now, ...over });
    const perDs = (calls: number) => calls / datastores.length;
    const vms = SIM_VMS + datastores.length * IN_USE_PER_DS;
    const scenario = `${datastores.length * IMAGES_PER_DS} images / ${datastores.length} datastores / ${vms} VMs`;
    const results: BenchResult[] = [];

    const first = await measure(sim, sweep(client));
    results.push({
      bench: "cache-sweep",
      case: `first sweep (${scenario}; marks the ${datastores.length * (IMAGES_PER_DS - IN_USE_PER_DS)} unused): round trips per datastore, maximum_objects 100`,
      unit: "calls",
      median: perDs(first.calls),
      samples: [perDs(first.calls)],
      extra: { wallMs: first.ms, states: states(first.report), byClient: first.report.roundTrips },
    });

    const rounds = Number(process.env.BENCH_SWEEP_ROUNDS ?? 3);
    for (const [label, c, pages] of [
      ["maximum_objects 100 (the default)", client, Math.ceil(vms / 100)],
      ["maximum_objects 1000", big, Math.ceil(vms / 1000)],
    ] as const) {
      const calls: number[] = [];
      const ms: number[] = [];
      let last: SweepReport | undefined;
      for (let i = 0; i < rounds; i++) {
        const m = await measure(sim, sweep(c));
        calls.push(perDs(m.calls));
        ms.push(m.ms);
        last = m.report;
      }
      results.push({
        bench: "cache-sweep",
        case: `steady sweep (${scenario}; nothing to change): round trips per datastore, ${label}`,
        unit: "calls",
        median: median(calls),
        samples: calls,
        target: "<= 10",
        met: median(calls) <= 10,
        extra: { vmPassPages: pages, states: last ? states(last) : {} },
      });
      results.push({ bench: "cache-sweep", case: `steady sweep (${scenario}): wall time, ${label}`, unit: "ms", median: median(ms), samples: ms });
    }

    const dry = await measure(sim, sweep(big, { now: new Date(now.getTime() + 2 * DAY * 1000), dryRun: true }));
    const purge = await measure(sim, sweep(big, { now: new Date(now.getTime() + 2 * DAY * 1000) }));
    const removed = states(purge.report).removed ?? 0;
    const steadyBig = results.find((r) => r.case.includes("steady") && r.case.includes("1000") && r.unit === "calls")!.median;
    results.push({
      bench: "cache-sweep",
      case: `purge a day later (${scenario}; ${removed} removed): round trips per datastore, maximum_objects 1000`,
      unit: "calls",
      median: perDs(purge.calls),
      samples: [perDs(purge.calls)],
      extra: {
        wallMs: purge.ms,
        perRemovedImage: Math.round(((purge.calls - steadyBig * datastores.length) / Math.max(removed, 1)) * 100) / 100,
        bytesFreed: purge.report.datastores.reduce((n, d) => n + d.bytesFreed, 0),
        dryRunFirst: { callsPerDatastore: perDs(dry.calls), wallMs: dry.ms, states: states(dry.report) },
        states: states(purge.report),
      },
    });
    return results;
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await sim.stop();
  }
}
