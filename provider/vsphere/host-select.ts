// Which host of a cluster a new VM goes to when vCenter will not choose: Nova schedules
// at cluster granularity and lets DRS pick the host; a cluster without DRS (or with DRS
// in manual mode, which only recommends) needs the host named in CreateVM_Task. Then:
// the connected, powered-on host not in (or entering) maintenance with the most free
// memory, ties to the first name, so the choice does not depend on vCenter's order.
import { z } from "zod";
import type { VimClient } from "./client.js";
import { NotFoundError } from "./errors.js";
import type { Cluster } from "./inventory.js";
import { PropertyCollector } from "./property.js";
import { bool, long, str } from "./schema.js";
import type { MoRef } from "./soap/xml.js";

const HostLoad = z.object({
  name: str,
  "runtime.connectionState": str,
  "runtime.inMaintenanceMode": bool,
  "runtime.powerState": str.optional(),
  "hardware.memorySize": long.optional(),
  "summary.quickStats.overallMemoryUsage": long.optional(),
});

export interface HostLoad {
  ref: MoRef;
  name: string;
  /** Bytes not in use (memorySize less overallMemoryUsage, which is in MB). */
  freeMemory: number;
  usable: boolean;
  /** Why not, when not usable. */
  reason: string | undefined;
}

/** The cluster's hosts with their free memory and whether a VM can go there (one round trip). */
export async function hostLoads(client: VimClient, hosts: MoRef[]): Promise<HostLoad[]> {
  if (hosts.length === 0) return [];
  const read = await new PropertyCollector(client).getMany(hosts, HostLoad);
  return read.map(({ obj, props: p }) => {
    const reason =
      p["runtime.connectionState"] !== "connected"
        ? `it is ${p["runtime.connectionState"]}`
        : p["runtime.inMaintenanceMode"]
          ? "it is in maintenance mode"
          : p["runtime.powerState"] !== undefined && p["runtime.powerState"] !== "poweredOn"
            ? `it is ${p["runtime.powerState"]}`
            : undefined;
    const freeMemory = (p["hardware.memorySize"] ?? 0) - (p["summary.quickStats.overallMemoryUsage"] ?? 0) * 2 ** 20;
    return { ref: obj, name: p.name, freeMemory, usable: reason === undefined, reason };
  });
}

/** Picks among loads (pure): the usable host with the most free memory; the error says why each is not. */
export function chooseHost(clusterName: string, loads: HostLoad[]): HostLoad {
  const usable = loads.filter((h) => h.usable).sort((a, b) => b.freeMemory - a.freeMemory || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const best = usable[0];
  if (best) return best;
  const why = loads.map((h) => `${h.name}: ${h.reason}`).join("; ");
  throw new NotFoundError(`no host of cluster ${clusterName} can take a VM (${why || "the cluster has no hosts"})`, "host", clusterName);
}

/**
 * The host CreateVM_Task should name: undefined when DRS places VMs itself (enabled and
 * not manual), else the chosen host.
 */
export async function hostFor(client: VimClient, cluster: Cluster): Promise<MoRef | undefined> {
  if (cluster.drsEnabled && cluster.drsBehavior !== "manual") return undefined;
  return chooseHost(cluster.name, await hostLoads(client, cluster.hosts)).ref;
}
