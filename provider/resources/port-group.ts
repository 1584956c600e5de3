// PortGroup: a standard port group on every host of the cluster, or a distributed
// port group on a distributed switch (Nova's networking section: flat_network_bridge,
// vlan_interface, ephemeral port binding).
import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { DuplicateNameFault, ManagedObjectNotFoundFault, NotFoundError, VimFault, type NotFoundKind } from "../vsphere/errors.js";
import { inventoryCache, traversal, type ClusterNode, type InventorySnapshot } from "../vsphere/inventory-cache.js";
import {
  addStandardPortGroup,
  bindingOf,
  bindingType,
  createDistributedPortGroup,
  destroyDistributedPortGroup,
  getDistributedPortGroup,
  networkVms,
  reconfigureDistributedPortGroup,
  removeStandardPortGroup,
  standardNetworkOf,
  type DistributedPortGroup,
} from "../vsphere/network.js";
import type { VimClient } from "../vsphere/client.js";
import { MoRef } from "../vsphere/soap/xml.js";
import { checkFailures, stripProvider, unknownInputFailures } from "./check.js";
import { changeKind, propertyPath, withDetail, type DetailEntry } from "./detailed-diff.js";
import type { HandlerContext, ResourceHandler } from "./handler-types.js";
import { UNKNOWN, isUnknown } from "./handler-types.js";
import {
  STANDARD_ID,
  convergeStandard,
  hostsOf,
  adoptHint,
  pickCluster,
  pickSwitch,
  planSwitches,
  presence,
  provesStale,
  standardId,
  summaryVlan,
} from "./port-group-placement.js";
import { dynamicProvider } from "./provider.js";

export interface PortGroupArgs {
  /** Port group name. Default: the `vmware:flatNetworkBridge` config (br100), as Nova's flat network. */
  name?: pulumi.Input<string>;
  /** VLAN id, 0 (untagged) to 4094. Default 0. */
  vlanId?: pulumi.Input<number>;
  /** "standard" (a port group on every host of the cluster, default) or "distributed". */
  kind?: pulumi.Input<"standard" | "distributed">;
  /**
   * standard: the vSwitch on each host (default: the one that uses the
   * `vmware:vlanInterface` NIC, as Nova's VlanManager); distributed: the
   * distributed switch's name (required).
   */
  switch?: pulumi.Input<string>;
  /** standard only: the cluster whose hosts get the port group. Default: `vmware:clusterName`. */
  clusterName?: pulumi.Input<string>;
  /**
   * The datacenter: for a standard port group when the cluster name is in several;
   * for a distributed one when the switch name is in several. Default: wherever
   * the one cluster or switch of that name is.
   */
  datacenter?: pulumi.Input<string>;
  /** distributed only: "ephemeral" (default, as the seed advises) or "static". Changed in place. */
  portBinding?: pulumi.Input<"ephemeral" | "static">;
  /** Delete even while VMs use it (vCenter may still refuse for powered-on VMs). */
  forceDelete?: pulumi.Input<boolean>;
  /**
   * Take over a port group of this name that exists already (made outside Pulumi)
   * instead of failing at check: create brings it to these inputs (every host of
   * the cluster gets it with this VLAN; a distributed one gets this VLAN and
   * binding) and keeps everything else it has. This is how an existing port group
   * comes under Pulumi: the engine's import does not reach dynamic providers.
   */
  adopt?: pulumi.Input<boolean>;
}

const INPUT_KEYS = ["name", "vlanId", "kind", "switch", "clusterName", "datacenter", "portBinding", "forceDelete", "adopt"] as const;
/** Output-only properties: the resource passes them as undefined so they become outputs. */
const OUTPUT_KEYS = ["hosts", "missingHosts", "hostSwitches", "hostVlans", "networkId", "switchUuid", "portgroupKey"];

/** Validated inputs. */
const InputsSchema = z.strictObject({
  name: z
    .string()
    .trim()
    .min(1, "a non-empty name")
    .max(80, "at most 80 characters")
    .regex(/^[^\u0000-\u001f%/\\]+$/, "no control characters, '%', '/' or '\\'")
    .optional(),
  vlanId: z.number().int("a whole number").min(0, "0 to 4094").max(4094, "0 to 4094").default(0),
  kind: z.enum(["standard", "distributed"]).default("standard"),
  switch: z.string().trim().min(1, "a non-empty switch name").optional(),
  clusterName: z.string().trim().min(1).optional(),
  datacenter: z.string().trim().min(1).optional(),
  portBinding: z.enum(["ephemeral", "static"]).optional(),
  forceDelete: z.boolean().default(false),
  adopt: z.boolean().default(false),
});
type Inputs = z.infer<typeof InputsSchema>;

/** Inputs after check (defaults from config filled in; all known by create/update). */
interface Resolved extends Inputs {
  name: string;
}

/** What the state holds (outputs). */
export interface PortGroupState extends Omit<Resolved, "adopt"> {
  /** standard: the cluster; distributed: absent (a distributed port group belongs to no cluster). */
  clusterName?: string;
  /** The datacenter it is in. */
  datacenter: string;
  /** standard: host name -> vSwitch; distributed: {} */
  hostSwitches: Record<string, string>;
  /** standard: host name -> the VLAN that host has (hosts can disagree after changes outside); distributed: {} */
  hostVlans: Record<string, number>;
  /** Hosts that have it (standard). */
  hosts: string[];
  /** Cluster hosts that lack it: drift found by refresh (standard). */
  missingHosts: string[];
  /** The vCenter object: Network:network-9 or DistributedVirtualPortgroup:dvportgroup-12 (absent until vCenter lists it). */
  networkId?: string;
  switchUuid?: string;
  portgroupKey?: string;
}

/**
 * A port group for the cluster's VMs.
 *
 * Resource ids:
 * - standard: `standard:<cluster managed object id>:<port group name>`, e.g.
 *   `standard:domain-c7:br100` (the cluster's id is the value of its reference,
 *   as `ClusterComputeResource:domain-c7`);
 * - distributed: the port group's reference, e.g.
 *   `DistributedVirtualPortgroup:dvportgroup-12`.
 *
 * `read` needs nothing but the id (refresh works from the id alone). Pulumi's
 * import (`pulumi import`, the `import` resource option) cannot use it yet: the
 * engine calls a dynamic provider's read without the provider itself
 * (pulumi/pulumi#3550), so it fails before reaching this code. To bring a port
 * group that exists already under Pulumi, set `adopt: true`.
 */
export class PortGroup extends pulumi.dynamic.Resource {
  declare readonly name: pulumi.Output<string>;
  declare readonly vlanId: pulumi.Output<number>;
  declare readonly kind: pulumi.Output<"standard" | "distributed">;
  declare readonly switch: pulumi.Output<string | undefined>;
  declare readonly clusterName: pulumi.Output<string | undefined>;
  declare readonly datacenter: pulumi.Output<string>;
  declare readonly portBinding: pulumi.Output<"ephemeral" | "static" | undefined>;
  declare readonly hosts: pulumi.Output<string[]>;
  declare readonly missingHosts: pulumi.Output<string[]>;
  declare readonly hostSwitches: pulumi.Output<Record<string, string>>;
  declare readonly hostVlans: pulumi.Output<Record<string, number>>;
  declare readonly networkId: pulumi.Output<string | undefined>;
  declare readonly switchUuid: pulumi.Output<string | undefined>;
  declare readonly portgroupKey: pulumi.Output<string | undefined>;

  constructor(name: string, args: PortGroupArgs = {}, opts?: pulumi.CustomResourceOptions) {
    super(
      portGroupProvider,
      name,
      // Every declared property in the inputs, or the engine never makes it an output (kind, switch, ... when not given).
      { ...Object.fromEntries([...INPUT_KEYS, ...OUTPUT_KEYS].map((k) => [k, undefined])), ...args },
      opts,
      "vmware",
      "PortGroup",
    );
  }
}

const portGroupProvider = dynamicProvider("PortGroup");

/** The input a failed look-up is blamed on. */
const PROPERTY_OF: Partial<Record<NotFoundKind, string>> = {
  cluster: "clusterName",
  datacenter: "datacenter",
  switch: "switch",
  vswitch: "switch",
  host: "clusterName",
};

/** Whether a check is for a port group this resource does not hold yet (create or replacement). */
function isNew(olds: Record<string, unknown>, n: Record<string, unknown>): boolean {
  if (Object.keys(stripProvider(olds)).length === 0) return true;
  // What says where it lives: a standard one moved to another vSwitch of the same hosts is still this one.
  const keys = n.kind === "distributed" ? ["name", "kind", "switch", "datacenter"] : ["name", "kind", "clusterName", "datacenter"];
  return keys.some((k) => (olds[k] ?? (k === "kind" ? "standard" : undefined)) !== (n[k] ?? undefined));
}

function failureOf(err: unknown): pulumi.dynamic.CheckFailure | undefined {
  if (!(err instanceof NotFoundError)) return undefined;
  return { property: PROPERTY_OF[err.kind] ?? "name", reason: err.message };
}

async function checkStandard(ctx: HandlerContext, olds: Record<string, unknown>, r: Record<string, unknown>): Promise<pulumi.dynamic.CheckFailure[]> {
  if (isUnknown(r.clusterName) || isUnknown(r.datacenter) || isUnknown(r.switch)) return [];
  const client = await ctx.client();
  const snap = await inventoryCache(client).topology();
  const cluster = pickCluster(snap, r.clusterName as string, r.datacenter as string | undefined);
  const hosts = hostsOf(snap, cluster);
  const { problems } = planSwitches(hosts, r.switch as string | undefined, ctx.config().vlanInterface);
  if (problems.length) return [{ property: "switch", reason: problems.join("; ") }];
  if (isUnknown(r.name) || r.adopt === true || isUnknown(r.adopt) || !isNew(olds, r)) return [];
  const name = r.name as string;
  const taken = hosts.filter((h) => h.portgroups.some((p) => p.name === name)).map((h) => h.hostName);
  if (taken.length === 0) return [];
  return [
    {
      property: "name",
      reason: `port group "${name}" already exists on ${taken.join(", ")} (cluster ${cluster.name}), so creating it would fail: ${adoptHint(standardId(cluster, name))}`,
    },
  ];
}

async function checkDistributed(ctx: HandlerContext, olds: Record<string, unknown>, r: Record<string, unknown>): Promise<pulumi.dynamic.CheckFailure[]> {
  if (isUnknown(r.switch) || isUnknown(r.datacenter)) return [];
  const client = await ctx.client();
  const sw = pickSwitch(await inventoryCache(client).switches(), r.switch as string, r.datacenter as string | undefined);
  if (isUnknown(r.name) || r.adopt === true || isUnknown(r.adopt) || !isNew(olds, r)) return [];
  const existing = sw.portgroups.find((p) => p.name === r.name);
  if (!existing) return [];
  return [
    {
      property: "name",
      reason: `distributed port group "${existing.name}" already exists on ${sw.name} (datacenter ${sw.datacenter.name}), so creating it would fail: ${adoptHint(existing.ref.toString())}`,
    },
  ];
}

/**
 * The state of a standard port group just written: one read of the hosts as they
 * are now and of the Network object vCenter made (it can list it a moment later:
 * wait for it a little, and never store an empty id).
 */
async function standardOutputs(client: VimClient, r: Resolved, cluster: ClusterNode): Promise<PortGroupState> {
  const { network, hosts: after } = await standardNetworkOf(client, cluster.hosts, r.name, 5000);
  return {
    name: r.name,
    vlanId: r.vlanId,
    kind: "standard",
    ...(r.switch ? { switch: r.switch } : {}),
    clusterName: cluster.name,
    datacenter: cluster.datacenter.name,
    forceDelete: r.forceDelete,
    ...presence(after, r.name),
    ...(network ? { networkId: network.toString() } : {}),
  };
}

export const portGroupHandler: ResourceHandler = {
  async check(ctx, olds, news) {
    const props = stripProvider(news);
    for (const k of OUTPUT_KEYS) if (props[k] === undefined || props[k] === null) delete props[k];
    const misspelt = unknownInputFailures(props, INPUT_KEYS, "PortGroup");
    if (misspelt.length) return { inputs: props, failures: misspelt };
    // Unknowns (outputs of resources not created yet, at preview) stay unknown: no
    // default is filled over them, and nothing that depends on them is checked.
    const unknown = Object.keys(props).filter((k) => isUnknown(props[k]));
    const known = Object.fromEntries(Object.entries(props).filter(([k]) => !unknown.includes(k)));
    const parsed = InputsSchema.safeParse(known);
    if (!parsed.success) return { inputs: props, failures: checkFailures(parsed.error, known, "PortGroup") };
    const inputs: Record<string, unknown> = { ...parsed.data };
    for (const k of unknown) inputs[k] = UNKNOWN;

    const cfg = ctx.config();
    if (inputs.name === undefined) inputs.name = cfg.flatNetworkBridge;
    if (isUnknown(inputs.kind)) return { inputs };
    const failures: pulumi.dynamic.CheckFailure[] = [];
    if (inputs.kind === "distributed") {
      if (inputs.switch === undefined) failures.push({ property: "switch", reason: "a distributed port group needs switch: the name of its distributed switch" });
      if (inputs.clusterName !== undefined) {
        failures.push({ property: "clusterName", reason: "clusterName applies to standard port groups only: a distributed port group belongs to its switch; remove it" });
      }
      if (inputs.portBinding === undefined) inputs.portBinding = "ephemeral";
    } else {
      if (inputs.portBinding !== undefined) {
        failures.push({ property: "portBinding", reason: `portBinding ${JSON.stringify(inputs.portBinding)} applies to distributed port groups only; remove it or set kind: "distributed"` });
      }
      if (inputs.clusterName === undefined) inputs.clusterName = cfg.clusterName;
      if (inputs.clusterName === undefined) failures.push({ property: "clusterName", reason: "no cluster: set clusterName, or the vmware:clusterName config" });
    }
    if (failures.length) return { inputs, failures };
    // Check against vCenter what can be checked now (one round trip, kept for create).
    try {
      const more = inputs.kind === "distributed" ? await checkDistributed(ctx, olds, inputs) : await checkStandard(ctx, olds, inputs);
      return more.length ? { inputs, failures: more } : { inputs };
    } catch (err) {
      const failure = failureOf(err);
      if (!failure) throw err;
      return { inputs, failures: [failure] };
    }
  },

  async diff(_ctx, _id, olds, news) {
    const o = stripProvider(olds) as unknown as PortGroupState;
    const n = stripProvider(news);
    const norm = (v: unknown) => (v === "" || v === null ? undefined : v);
    const kind = o.kind ?? "standard";
    // What forces a new port group; a distributed one is not tied to a cluster, and
    // a datacenter left out means "wherever it is".
    const replaceOn = kind === "distributed" ? ["name", "kind", "switch", "datacenter"] : ["name", "kind", "switch", "clusterName", "datacenter"];
    const unknowns = replaceOn.concat(["vlanId", "portBinding", "forceDelete"]).filter((k) => isUnknown(n[k]));
    const replaces = replaceOn.filter((k) => {
      if (isUnknown(n[k])) return false;
      if (k === "datacenter" && norm(n[k]) === undefined) return false;
      if (k === "kind") return (n.kind ?? "standard") !== kind;
      if (k === "switch" && kind === "standard" && n.switch !== undefined && o.switch === undefined) {
        // Placed by vmware:vlanInterface (or imported): a switch now named is a move only if a host has it elsewhere.
        const current = Object.values(o.hostSwitches ?? {});
        return current.length === 0 || current.some((v) => v !== n.switch);
      }
      return norm(n[k]) !== norm((o as unknown as Record<string, unknown>)[k]);
    });
    // What an update would change, each with its property path; any entry is an update.
    const inputs: DetailEntry[] = [];
    const drift: DetailEntry[] = [];
    if ((norm(n.forceDelete) ?? false) !== (o.forceDelete ?? false)) inputs.push({ path: "forceDelete", kind: changeKind(o.forceDelete, norm(n.forceDelete)) });
    if (!isUnknown(n.vlanId)) {
      const want = (n.vlanId as number | undefined) ?? 0;
      if (want !== o.vlanId) inputs.push({ path: "vlanId", kind: changeKind(o.vlanId, n.vlanId) });
      if (kind === "standard") {
        // Every host must have it with this VLAN: drift on any host is a change.
        const hostVlans = o.hostVlans ?? Object.fromEntries((o.hosts ?? []).map((h) => [h, o.vlanId]));
        if (want === o.vlanId) {
          for (const [host, vlan] of Object.entries(hostVlans)) if (vlan !== want) drift.push({ path: propertyPath("hostVlans", host), kind: "UPDATE", inputDiff: false });
        }
        for (const host of o.missingHosts ?? []) drift.push({ path: propertyPath("hostVlans", host), kind: "ADD", inputDiff: false });
      }
    }
    if (kind === "distributed" && !isUnknown(n.portBinding) && (n.portBinding ?? "ephemeral") !== (o.portBinding ?? "ephemeral")) {
      inputs.push({ path: "portBinding", kind: "UPDATE" });
    }
    const update = inputs.length + drift.length > 0;
    if (replaces.length) {
      const old = o as unknown as Record<string, unknown>;
      const replaced = replaces.map((k): DetailEntry => ({ path: k, kind: k === "kind" ? "UPDATE" : changeKind(norm(old[k]), norm(n[k])) }));
      return withDetail({ changes: true, replaces, deleteBeforeReplace: true }, [...replaced, ...inputs]);
    }
    // Unknown inputs may or may not change anything: say so, and list no replacement.
    if (unknowns.length && !update) return { replaces: [] };
    return withDetail({ changes: update, replaces: [] }, [...inputs, ...drift]);
  },

  async create(ctx, inputs) {
    const r = stripProvider(inputs) as unknown as Resolved;
    const client = await ctx.client();
    const cache = inventoryCache(client);
    if (r.kind === "distributed") {
      const binding = r.portBinding ?? "ephemeral";
      const sw = pickSwitch(await cache.switches(), r.switch!, r.datacenter);
      let pg: DistributedPortGroup;
      const existing = r.adopt ? sw.portgroups.find((p) => p.name === r.name) : undefined;
      if (existing) {
        // Adopt: bring it to the inputs, keep the rest.
        pg = existing;
        const change = {
          vlanId: pg.vlanId !== r.vlanId ? r.vlanId : undefined,
          binding: bindingType(binding) !== pg.binding ? binding : undefined,
        };
        if (change.vlanId !== undefined || change.binding !== undefined) await reconfigureDistributedPortGroup(client, pg, change);
      } else {
        try {
          pg = await createDistributedPortGroup(client, sw, { name: r.name, vlanId: r.vlanId, binding });
        } catch (err) {
          if (!(err instanceof DuplicateNameFault)) throw err;
          throw new DuplicateNameFault(
            "DuplicateName",
            `distributed port group "${r.name}" already exists on ${sw.name}: ${adoptHint(err.object?.toString() ?? "DistributedVirtualPortgroup:<id>")}`,
            err.detail,
          );
        }
      }
      const outs: PortGroupState = {
        name: r.name,
        vlanId: r.vlanId,
        kind: "distributed",
        switch: sw.name,
        datacenter: sw.datacenter.name,
        portBinding: binding,
        forceDelete: r.forceDelete,
        hostSwitches: {},
        hostVlans: {},
        hosts: [],
        missingHosts: [],
        networkId: pg.ref.toString(),
        switchUuid: sw.uuid,
        portgroupKey: pg.key,
      };
      return { id: pg.ref.toString(), outs };
    }

    let snap = await cache.topology();
    let cluster = pickCluster(snap, r.clusterName!, r.datacenter);
    let hosts = hostsOf(snap, cluster);
    if (hosts.some((h) => h.portgroups.some((p) => p.name === r.name))) {
      // Decide on what vCenter says now, not on what was read at check.
      snap = await cache.topology({ fresh: true });
      cluster = pickCluster(snap, r.clusterName!, r.datacenter);
      hosts = hostsOf(snap, cluster);
    }
    const taken = hosts.filter((h) => h.portgroups.some((p) => p.name === r.name));
    if (taken.length && r.adopt) {
      // Adopt: every host gets it with this VLAN; what the hosts that have it hold otherwise stays.
      await convergeStandard(ctx, client, hosts, r.name, r.vlanId, r.switch);
      return { id: standardId(cluster, r.name), outs: await standardOutputs(client, r, cluster) };
    }
    if (taken.length) {
      throw new DuplicateNameFault(
        "DuplicateName",
        `port group "${r.name}" already exists on ${taken.map((h) => h.hostName).join(", ")}: ${adoptHint(standardId(cluster, r.name))}`,
        { name: r.name },
      );
    }
    const { plan, problems } = planSwitches(hosts, r.switch, ctx.config().vlanInterface);
    if (problems.length) throw new NotFoundError(problems.join("; "), "vswitch", r.switch);

    // Add on every host at once; if any fails, take it off the hosts that got it.
    const results = await Promise.allSettled(
      hosts.map((h) =>
        addStandardPortGroup(client, { host: h.host, networkSystem: h.networkSystem }, { name: r.name, vlanId: r.vlanId, vswitchName: plan.get(h.host.toString())! }),
      ),
    );
    const failed = results.flatMap((res, i) => (res.status === "rejected" ? [{ host: hosts[i]!, reason: res.reason as unknown }] : []));
    if (failed.length) {
      await Promise.allSettled(
        hosts
          .filter((_, i) => results[i]!.status === "fulfilled")
          .map((h) => removeStandardPortGroup(client, { host: h.host, networkSystem: h.networkSystem }, r.name)),
      );
      const first = failed[0]!;
      const stale = failed.some((f) => provesStale(f.reason));
      throw new Error(
        `port group "${r.name}" could not be added on ${failed.map((f) => f.host.hostName).join(", ")} (${(first.reason as Error)?.message ?? String(first.reason)}); ` +
          `it was removed again from the hosts that got it${stale ? `; it exists there already: ${adoptHint(standardId(cluster, r.name))}` : ""}`,
      );
    }
    return { id: standardId(cluster, r.name), outs: await standardOutputs(client, r, cluster) };
  },

  async read(ctx, id, props) {
    // `props` is the state, or nothing but the provider when importing by id.
    const s = stripProvider(props) as unknown as Partial<PortGroupState>;
    const importing = s.kind === undefined;
    const client = await ctx.client();
    const cache = inventoryCache(client);
    const std = STANDARD_ID.exec(id);
    if (std) {
      const [, clusterId, name] = std as unknown as [string, string, string];
      const snap = await cache.topology({ fresh: true, networks: true });
      const cluster = snap.clusters.find((c) => c.ref.value === clusterId);
      if (!cluster) return { id: "", props: {} };
      const hosts = hostsOf(snap, cluster);
      const where = presence(hosts, name);
      if (where.hosts.length === 0) return { id: "", props: {} };
      const network = hosts
        .flatMap((h) => h.networks ?? [])
        .map((ref) => snap.networks.get(ref.toString()))
        .find((n) => n?.name === name && n.ref.type === "Network");
      const outs: PortGroupState = {
        name,
        vlanId: summaryVlan(where.hostVlans, s.vlanId),
        kind: "standard",
        ...(s.switch ? { switch: s.switch } : {}),
        clusterName: cluster.name,
        datacenter: cluster.datacenter.name,
        forceDelete: s.forceDelete ?? false,
        ...where,
        ...(network ? { networkId: network.ref.toString() } : s.networkId ? { networkId: s.networkId } : {}),
      };
      const inputs = { name, vlanId: outs.vlanId, kind: "standard", clusterName: cluster.name, forceDelete: outs.forceDelete };
      return { id, props: outs as unknown as Record<string, unknown>, ...(importing ? { inputs } : {}) };
    }

    let ref: MoRef;
    try {
      ref = MoRef.parse(s.networkId || id);
    } catch {
      throw new Error(`PortGroup id ${JSON.stringify(id)} is neither standard:<cluster id>:<name> nor a distributed port group reference (DistributedVirtualPortgroup:dvportgroup-12)`);
    }
    const snap = await cache.switches({ fresh: true });
    const sw = snap.switches.find((w) => w.portgroups.some((p) => p.ref.equals(ref)));
    const pg = sw?.portgroups.find((p) => p.ref.equals(ref));
    if (!sw || !pg) return { id: "", props: {} };
    const binding = bindingOf(pg.binding) as "ephemeral" | "static";
    const outs: PortGroupState = {
      name: pg.name,
      vlanId: pg.vlanId ?? s.vlanId ?? 0,
      kind: "distributed",
      switch: sw.name,
      datacenter: sw.datacenter.name,
      portBinding: binding,
      forceDelete: s.forceDelete ?? false,
      hostSwitches: {},
      hostVlans: {},
      hosts: [],
      missingHosts: [],
      networkId: ref.toString(),
      switchUuid: sw.uuid,
      portgroupKey: pg.key,
    };
    const inputs = { name: pg.name, vlanId: outs.vlanId, kind: "distributed", switch: sw.name, portBinding: binding, forceDelete: outs.forceDelete };
    return { id, props: outs as unknown as Record<string, unknown>, ...(importing ? { inputs } : {}) };
  },

  async update(ctx, id, olds, news) {
    const o = stripProvider(olds) as unknown as PortGroupState;
    const n = stripProvider(news) as unknown as Resolved;
    const client = await ctx.client();
    const cache = inventoryCache(client);
    if (o.kind === "distributed") {
      const ref = MoRef.parse(o.networkId || id);
      const cached = (await cache.switches()).switches.flatMap((w) => w.portgroups).find((p) => p.ref.equals(ref));
      const pg = cached ?? (await getDistributedPortGroup(client, ref));
      if (!pg) throw new NotFoundError(`distributed port group ${o.name} (${ref.toString()}) no longer exists; refresh to re-create it`, "portgroup", o.name);
      const binding = n.portBinding ?? "ephemeral";
      const change = {
        vlanId: pg.vlanId !== n.vlanId ? n.vlanId : undefined,
        binding: bindingType(binding) !== pg.binding ? binding : undefined,
      };
      if (change.vlanId !== undefined || change.binding !== undefined) await reconfigureDistributedPortGroup(client, pg, change);
      return { outs: { ...o, vlanId: n.vlanId, portBinding: binding, forceDelete: n.forceDelete } };
    }

    const clusterId = STANDARD_ID.exec(id)?.[1];
    const clusterOf = (snap: InventorySnapshot) =>
      (clusterId && snap.clusters.find((c) => c.ref.value === clusterId)) || pickCluster(snap, o.clusterName ?? n.clusterName!, o.datacenter);
    let snap = await cache.topology();
    let cluster = clusterOf(snap);
    try {
      await convergeStandard(ctx, client, hostsOf(snap, cluster), o.name, n.vlanId, n.switch);
    } catch (err) {
      if (!provesStale(err)) throw err;
      // A host changed since it was read: read again and converge once more.
      snap = await cache.topology({ fresh: true });
      cluster = clusterOf(snap);
      await convergeStandard(ctx, client, hostsOf(snap, cluster), o.name, n.vlanId, n.switch);
    }
    // Every host now has it with this VLAN; the vSwitch is the one it was on, or the planned one.
    const hosts = hostsOf(snap, cluster);
    const { plan } = planSwitches(hosts, n.switch, ctx.config().vlanInterface);
    const hostSwitches = Object.fromEntries(
      hosts.map((h) => [h.hostName, h.portgroups.find((p) => p.name === o.name)?.vswitchName ?? plan.get(h.host.toString()) ?? ""]),
    );
    const names = hosts.map((h) => h.hostName).sort();
    let networkId = o.networkId;
    if (!networkId) networkId = (await standardNetworkOf(client, cluster.hosts, o.name, 5000)).network?.toString();
    const outs: PortGroupState = {
      ...o,
      vlanId: n.vlanId,
      forceDelete: n.forceDelete,
      hosts: names,
      missingHosts: [],
      hostSwitches,
      hostVlans: Object.fromEntries(names.map((h) => [h, n.vlanId])),
      ...(networkId ? { networkId } : {}),
    };
    return { outs };
  },

  async delete(ctx, id, props) {
    const s = stripProvider(props) as unknown as PortGroupState;
    const client = await ctx.client();
    const inUse = (name: string, vms: Array<{ name: string }>) =>
      new VimFault(
        "ResourceInUse",
        `port group "${name}" is used by ${vms.length} VM${vms.length === 1 ? "" : "s"} (${vms
          .slice(0, 5)
          .map((v) => v.name)
          .join(", ")}${vms.length > 5 ? ", ..." : ""}): move their NICs to another network first, or set forceDelete: true`,
      );
    if (s.kind === "distributed") {
      const ref = MoRef.parse(s.networkId || id);
      if (!s.forceDelete) {
        const vms = await networkVms(client, ref);
        if (vms.length > 0) throw inUse(s.name, vms);
      }
      try {
        await destroyDistributedPortGroup(client, ref);
      } catch (err) {
        if (!(err instanceof ManagedObjectNotFoundFault)) throw err; // gone already
      }
      return;
    }

    // One read: the cluster's hosts now, and (with a known network) the VMs on it.
    const network = s.networkId ? MoRef.parse(s.networkId) : undefined;
    const vmSpec = network
      ? [
          {
            propSet: [{ type: "VirtualMachine", pathSet: ["name"] }],
            objectSet: [{ obj: network, skip: true, selectSet: [traversal("networkVms", "Network", "vm")] }],
            reportMissingObjectsInResults: true,
          },
        ]
      : [];
    const check = !s.forceDelete;
    const snap = await inventoryCache(client).topology({ fresh: true, networks: check && !network, ...(check && network ? { extra: vmSpec } : {}) });
    const clusterId = STANDARD_ID.exec(id)?.[1];
    let cluster: ClusterNode | undefined = clusterId ? snap.clusters.find((c) => c.ref.value === clusterId) : undefined;
    if (!cluster && s.clusterName) {
      try {
        cluster = pickCluster(snap, s.clusterName, s.datacenter);
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
    }
    if (!cluster) return; // the cluster is gone, and the port group with it
    const hosts = hostsOf(snap, cluster).filter((h) => h.portgroups.some((p) => p.name === s.name));
    if (check && hosts.length) {
      let vms: Array<{ name: string }>;
      if (network) {
        vms = snap.extra.filter((c) => c.obj.type === "VirtualMachine").map((c) => ({ name: String(c.props.name) }));
      } else {
        // No id stored: find the Network by name among the hosts' networks.
        const found = hosts
          .flatMap((h) => h.networks ?? [])
          .map((ref) => snap.networks.get(ref.toString()))
          .find((n) => n?.name === s.name && n.ref.type === "Network");
        vms = found ? await networkVms(client, found.ref) : [];
      }
      if (vms.length > 0) throw inUse(s.name, vms);
    }
    await Promise.all(
      hosts.map((h) =>
        removeStandardPortGroup(client, { host: h.host, networkSystem: h.networkSystem }, s.name).catch((err: unknown) => {
          if (!(err instanceof VimFault && err.code === "NotFound")) throw err; // removed meanwhile
        }),
      ),
    );
  },
};
