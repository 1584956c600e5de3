// Driver core against the embedded simulator (TLS, 2 clusters x 3 hosts, 1,000 VMs):
// round trips and wall time for login, locating the cluster, listing 1,000 VMs with
// paging, and waiting for tasks by polling vs WaitForUpdatesEx.
import { VimClient } from "../provider/vsphere/client.js";
import { getCluster, getDatacenter, listVms } from "../provider/vsphere/inventory.js";
import { moRef } from "../provider/vsphere/schema.js";
import { waitForTask, type TaskWaitStrategy } from "../provider/vsphere/task.js";
import { simOptions } from "../test/support/clients.js";
import { startVcsim } from "../test/vcsim/index.js";
import type { BenchResult } from "./run.js";

const ROUNDS = 5;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function measure(rounds: number, fn: (i: number) => Promise<number>): Promise<{ ms: number[]; trips: number[] }> {
  const ms: number[] = [];
  const trips: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    trips.push(await fn(i));
    ms.push(Math.round((performance.now() - t0) * 10) / 10);
  }
  return { ms, trips };
}

function result(name: string, m: { ms: number[]; trips: number[] }, extra: Record<string, unknown> = {}): BenchResult[] {
  return [
    { bench: "driver", case: `${name}: wall time`, unit: "ms", median: median(m.ms), samples: m.ms, extra },
    { bench: "driver", case: `${name}: round trips`, unit: "requests", median: median(m.trips), samples: m.trips },
  ];
}

export async function run(): Promise<BenchResult[]> {
  const sim = await startVcsim({ tls: true, clusters: 2, hosts: 3, vms: 1000, powerOn: true });
  const out: BenchResult[] = [];
  try {
    const opts = simOptions(sim);
    out.push(
      ...result(
        "login (RetrieveServiceContent + version check + Login)",
        await measure(ROUNDS, async () => {
          const c = await VimClient.connect(opts);
          const n = c.stats.roundTrips;
          await c.close();
          return n;
        }),
      ),
    );

    const client = await VimClient.connect(opts);
    out.push(
      ...result(
        "locate cluster DC0_C1 (datacenter + cluster by name)",
        await measure(ROUNDS, async () => {
          const before = client.stats.roundTrips;
          const dc = await getDatacenter(client);
          await getCluster(client, dc, "DC0_C1");
          return client.stats.roundTrips - before;
        }),
      ),
    );
    for (const maximumObjects of [100, 1000]) {
      const c = await VimClient.connect({ ...opts, maximumObjects });
      const dc = await getDatacenter(c);
      out.push(
        ...result(
          `list 1,000 VMs (name, power state), maximumObjects=${maximumObjects}`,
          await measure(ROUNDS, async () => {
            const before = c.stats.roundTrips;
            const vms = await listVms(c, dc.vmFolder);
            if (vms.length !== 1000) throw new Error(`listed ${vms.length} VMs`);
            return c.stats.roundTrips - before;
          }),
        ),
      );
      await c.close();
    }

    const [vm] = await listVms(client, client.serviceContent.rootFolder);
    for (const taskMs of [0, 1000, 3000]) {
      for (const strategy of ["poll", "updates", "auto"] as TaskWaitStrategy[]) {
        if (taskMs > 0) await sim.control.addRule({ kind: "taskDelay", method: "Rename_Task", ms: taskMs, times: -1 });
        const rounds = taskMs >= 3000 ? 2 : 3;
        out.push(
          ...result(
            `task of ${taskMs} ms, ${strategy} (task_poll_interval 0.5 s)`,
            await measure(rounds, async (i) => {
              const before = client.stats.roundTrips;
              const task = moRef.parse(await client.invoke("Rename_Task", vm!.ref, { newName: `bench-${strategy}-${taskMs}-${i}` }));
              await waitForTask(client, task, { strategy });
              return client.stats.roundTrips - before;
            }),
          ),
        );
        await sim.control.clearRules();
      }
    }
    await client.close();
  } finally {
    await sim.stop();
  }
  return out;
}
