// Where a PortGroup goes and how it stands: the cluster or switch by name, the
// vSwitch on each host, what each host has, and bringing every host to one VLAN.
import type { HandlerContext } from "./handler-types.js";
import { NotFoundError, VimFault, type NotFoundKind } from "../vsphere/errors.js";
import type { ClusterNode, InventorySnapshot, SwitchNode } from "../vsphere/inventory-cache.js";
import { addStandardPortGroup, updateStandardPortGroup, vswitchForNic, type HostNetworking } from "../vsphere/network.js";
import type { VimClient } from "../vsphere/client.js";

/** A standard port group across the cluster's hosts, as the state records it. */
export interface Presence {
  /** Hosts that have it. */
  hosts: string[];
  /** Cluster hosts that lack it. */
  missingHosts: string[];
  /** Host name -> vSwitch. */
  hostSwitches: Record<string, string>;
  /** Host name -> the VLAN that host has. */
  hostVlans: Record<string, number>;
}

export const STANDARD_ID = /^standard:([^:]+):(.+)$/s;

export function standardId(cluster: ClusterNode, name: string): string {
  return `standard:${cluster.ref.value}:${name}`;
}

export function adoptHint(id: string): string {
  return `choose another name, or set adopt: true to take it over (its id is ${JSON.stringify(id)})`;
}

/**
 * The one item of that name, in the named datacenter or in any; errors say what
 * there is (`label` writes an item in that list) and blame the datacenter when the
 * name is in several.
 */
function pickNamed<T extends { name: string; datacenter: { name: string } }>(
  snap: InventorySnapshot,
  items: T[],
  what: { noun: string; kind: NotFoundKind; label: (item: T) => string },
  name: string,
  datacenter: string | undefined,
): T {
  if (datacenter !== undefined && !snap.datacenters.some((d) => d.name === datacenter)) {
    throw new NotFoundError(`datacenter "${datacenter}" not found (there are: ${snap.datacenters.map((d) => d.name).join(", ") || "none"})`, "datacenter", datacenter);
  }
  const candidates = items.filter((c) => datacenter === undefined || c.datacenter.name === datacenter);
  const found = candidates.filter((c) => c.name === name);
  if (found.length > 1) {
    throw new NotFoundError(
      `${what.noun} "${name}" exists in several datacenters (${found.map((c) => c.datacenter.name).join(", ")}): set datacenter`,
      "datacenter",
      undefined,
      true,
    );
  }
  if (!found[0]) {
    const names = candidates.map(what.label).join(", ") || "none";
    throw new NotFoundError(`${what.noun} "${name}" not found${datacenter ? ` in datacenter ${datacenter}` : ""} (there are: ${names})`, what.kind, name);
  }
  return found[0];
}

/** The cluster of that name (in the datacenter, when named); errors say what there is. */
export function pickCluster(snap: InventorySnapshot, name: string, datacenter: string | undefined): ClusterNode {
  return pickNamed(snap, snap.clusters, { noun: "cluster", kind: "cluster", label: (c) => `${c.name} (${c.datacenter.name})` }, name, datacenter);
}

/** The distributed switch of that name, in any datacenter unless one is named. */
export function pickSwitch(snap: InventorySnapshot, name: string, datacenter: string | undefined): SwitchNode {
  const label = (s: SwitchNode) => (datacenter ? s.name : `${s.name} (${s.datacenter.name})`);
  return pickNamed(snap, snap.switches, { noun: "distributed switch", kind: "switch", label }, name, datacenter);
}

export function hostsOf(snap: InventorySnapshot, cluster: ClusterNode): HostNetworking[] {
  return cluster.hosts.flatMap((h) => snap.hosts.get(h.toString()) ?? []);
}

/** Per host, the vSwitch a standard port group goes on, or why there is none. */
export function planSwitches(hosts: HostNetworking[], wanted: string | undefined, vlanInterface: string): { plan: Map<string, string>; problems: string[] } {
  const plan = new Map<string, string>();
  const problems: string[] = [];
  for (const h of hosts) {
    if (wanted) {
      if (h.vswitches.some((v) => v.name === wanted)) plan.set(h.host.toString(), wanted);
      else problems.push(`host ${h.hostName} has no vSwitch "${wanted}" (it has: ${h.vswitches.map((v) => v.name).join(", ") || "none"})`);
    } else {
      const vs = vswitchForNic(h, vlanInterface);
      if (vs) plan.set(h.host.toString(), vs);
      else problems.push(`host ${h.hostName}: no vSwitch uses physical NIC ${vlanInterface} (vmware:vlanInterface); set switch, or vlanInterface to a NIC in use`);
    }
  }
  return { plan, problems };
}

/** Where a standard port group is, across the cluster's hosts, as the state records it. */
export function presence(hosts: HostNetworking[], name: string): Presence {
  const withIt = hosts.flatMap((h) => h.portgroups.filter((p) => p.name === name).map((p) => ({ host: h.hostName, pg: p })));
  withIt.sort((a, b) => a.host.localeCompare(b.host));
  return {
    hosts: withIt.map((w) => w.host),
    missingHosts: hosts.filter((h) => !withIt.some((w) => w.host === h.hostName)).map((h) => h.hostName).sort(),
    hostSwitches: Object.fromEntries(withIt.map((w) => [w.host, w.pg.vswitchName])),
    hostVlans: Object.fromEntries(withIt.map((w) => [w.host, w.pg.vlanId])),
  };
}

/**
 * The one VLAN to report when hosts disagree: the previous one if some host still
 * has it, else the most common (hostVlans tells each host's).
 */
export function summaryVlan(hostVlans: Record<string, number>, previous: number | undefined): number {
  const vlans = Object.values(hostVlans);
  if (previous !== undefined && vlans.includes(previous)) return previous;
  const counts = new Map<number, number>();
  for (const v of vlans) counts.set(v, (counts.get(v) ?? 0) + 1);
  const ranked = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  return ranked[0]?.[0] ?? previous ?? 0;
}

/** A host write failed in a way that proves what was read stale. */
export function provesStale(err: unknown): boolean {
  return err instanceof VimFault && (err.code === "AlreadyExists" || err.code === "NotFound" || err.code === "DuplicateName");
}

export async function convergeStandard(
  ctx: HandlerContext,
  client: VimClient,
  hosts: HostNetworking[],
  name: string,
  vlanId: number,
  wantedSwitch: string | undefined,
): Promise<void> {
  const missing = hosts.filter((h) => !h.portgroups.some((p) => p.name === name));
  const { plan, problems } = planSwitches(missing, wantedSwitch, ctx.config().vlanInterface);
  if (problems.length) throw new NotFoundError(problems.join("; "), "vswitch", wantedSwitch);
  // Every host's call ends before any failure is reported, so a read after it sees them all.
  const results = await Promise.allSettled(
    hosts.map(async (h) => {
      const pg = h.portgroups.find((p) => p.name === name);
      const target = { host: h.host, networkSystem: h.networkSystem };
      if (!pg) await addStandardPortGroup(client, target, { name, vlanId, vswitchName: plan.get(h.host.toString())! });
      // Only the VLAN changes: the vSwitch and the policy (security, teaming overrides) go back as read.
      else if (pg.vlanId !== vlanId) await updateStandardPortGroup(client, target, { name, vlanId, vswitchName: pg.vswitchName, policy: pg.policy });
    }),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
}
