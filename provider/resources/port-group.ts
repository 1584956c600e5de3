// PortGroup: a standard port group on every host of the cluster, or a distributed
// port group on a distributed switch (Nova's networking section: flat_network_bridge,
// vlan_interface, ephemeral port binding).
import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { DuplicateNameFault, NotFoundError, VimFault } from "../vsphere/errors.js";
import { findCluster, getDatacenter, type Cluster } from "../vsphere/inventory.js";
import {
  addStandardPortGroup,
  createDistributedPortGroup,
  destroyDistributedPortGroup,
  findNetwork,
  getDistributedPortGroup,
  getDistributedSwitch,
  getHostNetworking,
  networkVms,
  removeStandardPortGroup,
  setDistributedPortGroupVlan,
  updateStandardPortGroup,
  vswitchForNic,
  type HostNetworking,
} from "../vsphere/network.js";
import { MoRef } from "../vsphere/soap/xml.js";
import type { VimClient } from "../vsphere/client.js";
import { checkFailures, stripProvider } from "./check.js";
import type { HandlerContext, ResourceHandler } from "./handler-types.js";
import { isUnknown } from "./handler-types.js";
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
  /** Cluster whose hosts get a standard port group. Default: `vmware:clusterName`. */
  clusterName?: pulumi.Input<string>;
  /** Datacenter, when the cluster name is not unique or for a distributed switch. */
  datacenter?: pulumi.Input<string>;
  /** distributed only: "ephemeral" (default, as the seed advises) or "static". */
  portBinding?: pulumi.Input<"ephemeral" | "static">;
  /** Delete even while VMs use it (vCenter may still refuse for powered-on VMs). */
  forceDelete?: pulumi.Input<boolean>;
}

/** Validated inputs. */
const InputsSchema = z.object({
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
});
type Inputs = z.infer<typeof InputsSchema>;

/** Inputs after check: defaults from config filled in. */
interface Resolved extends Inputs {
  name: string;
}

/** What the state holds (outputs). */
export interface PortGroupState extends Resolved {
  clusterName: string;
  datacenter: string;
  /** standard: host name -> vSwitch; distributed: {} */
  hostSwitches: Record<string, string>;
  /** Hosts that have it (standard). */
  hosts: string[];
  /** Cluster hosts that lack it: drift found by refresh (standard). */
  missingHosts: string[];
  /** The vCenter object: Network:network-9 or DistributedVirtualPortgroup:dvportgroup-12. */
  networkId: string;
  switchUuid?: string;
  portgroupKey?: string;
}

/** A port group for the cluster's VMs. */
export class PortGroup extends pulumi.dynamic.Resource {
  declare readonly name: pulumi.Output<string>;
  declare readonly vlanId: pulumi.Output<number>;
  declare readonly kind: pulumi.Output<"standard" | "distributed">;
  declare readonly switch: pulumi.Output<string | undefined>;
  declare readonly clusterName: pulumi.Output<string>;
  declare readonly datacenter: pulumi.Output<string>;
  declare readonly hosts: pulumi.Output<string[]>;
  declare readonly missingHosts: pulumi.Output<string[]>;
  declare readonly hostSwitches: pulumi.Output<Record<string, string>>;
  declare readonly networkId: pulumi.Output<string>;
  declare readonly switchUuid: pulumi.Output<string | undefined>;
  declare readonly portgroupKey: pulumi.Output<string | undefined>;

  constructor(name: string, args: PortGroupArgs = {}, opts?: pulumi.CustomResourceOptions) {
    super(
      portGroupProvider,
      name,
      {
        hosts: undefined,
        missingHosts: undefined,
        hostSwitches: undefined,
        networkId: undefined,
        switchUuid: undefined,
        portgroupKey: undefined,
        ...args,
      },
      opts,
      "vmware",
      "PortGroup",
    );
  }
}

const portGroupProvider = dynamicProvider("PortGroup");

/** Inputs that force a new port group when they change. */
const REPLACE_ON = ["name", "kind", "switch", "clusterName", "datacenter", "portBinding"] as const;

function resolveInputs(ctx: HandlerContext, inputs: Inputs): Resolved & { clusterName: string | undefined } {
  const cfg = ctx.config();
  return {
    ...inputs,
    name: inputs.name ?? cfg.flatNetworkBridge,
    clusterName: inputs.clusterName ?? cfg.clusterName,
    ...(inputs.kind === "distributed" ? { portBinding: inputs.portBinding ?? "ephemeral" } : {}),
  };
}

/** Per host, the vSwitch a standard port group goes on, or why there is none. */
function planSwitches(hosts: HostNetworking[], wanted: string | undefined, vlanInterface: string): { plan: Map<string, string>; problems: string[] } {
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
function presence(hosts: HostNetworking[], name: string): Pick<PortGroupState, "hosts" | "missingHosts" | "hostSwitches"> {
  const withIt = hosts.flatMap((h) => h.portgroups.filter((p) => p.name === name).map((p) => ({ host: h.hostName, vswitch: p.vswitchName })));
  return {
    hosts: withIt.map((w) => w.host).sort(),
    missingHosts: hosts.filter((h) => !withIt.some((w) => w.host === h.hostName)).map((h) => h.hostName).sort(),
    hostSwitches: Object.fromEntries(withIt.map((w) => [w.host, w.vswitch])),
  };
}

async function clusterOf(client: VimClient, s: { clusterName?: string | undefined; datacenter?: string | undefined }): Promise<Cluster> {
  if (!s.clusterName) throw new NotFoundError("no cluster: set clusterName, or the vmware:clusterName config");
  return findCluster(client, s.clusterName, s.datacenter);
}

function standardId(cluster: Cluster, name: string): string {
  return `standard:${cluster.ref.value}:${name}`;
}

export const portGroupHandler: ResourceHandler = {
  async check(ctx, _olds, news) {
    const props = stripProvider(news);
    const known = Object.fromEntries(Object.entries(props).filter(([, v]) => !isUnknown(v)));
    const parsed = InputsSchema.safeParse(known);
    if (!parsed.success) return { inputs: props, failures: checkFailures(parsed.error, known, "PortGroup") };
    const inputs = parsed.data;
    const failures: pulumi.dynamic.CheckFailure[] = [];
    if (inputs.kind === "distributed" && !inputs.switch && !isUnknown(props.switch)) {
      failures.push({ property: "switch", reason: "a distributed port group needs switch: the name of its distributed switch" });
    }
    if (inputs.kind === "standard" && inputs.portBinding) {
      failures.push({ property: "portBinding", reason: `portBinding "${inputs.portBinding}" applies to distributed port groups only; remove it or set kind: "distributed"` });
    }
    if (failures.length > 0) return { inputs: props, failures };
    const resolved = resolveInputs(ctx, inputs);
    if (!resolved.clusterName && inputs.kind === "standard" && !isUnknown(props.clusterName)) {
      return { inputs: props, failures: [{ property: "clusterName", reason: "no cluster: set clusterName, or the vmware:clusterName config" }] };
    }
    // Check against vCenter what can be checked now: the cluster, the switch.
    if (Object.values(props).some(isUnknown)) return { inputs: { ...props, ...resolved } };
    const client = await ctx.client();
    try {
      if (inputs.kind === "standard") {
        const cluster = await clusterOf(client, resolved);
        const { problems } = planSwitches(await getHostNetworking(client, cluster.hosts), inputs.switch, ctx.config().vlanInterface);
        if (problems.length) return { inputs: props, failures: [{ property: "switch", reason: problems.join("; ") }] };
      } else {
        const dc = resolved.clusterName ? (await clusterOf(client, resolved)).datacenter : await getDatacenter(client, inputs.datacenter);
        await getDistributedSwitch(client, dc, inputs.switch!);
      }
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      const property = /switch/.test(err.message) ? "switch" : /datacenter/.test(err.message) ? "datacenter" : "clusterName";
      return { inputs: props, failures: [{ property, reason: err.message }] };
    }
    return { inputs: { ...props, ...resolved } };
  },

  async diff(_ctx, _id, olds, news) {
    const o = olds as unknown as PortGroupState;
    const n = stripProvider(news) as unknown as Resolved;
    // "" and absent mean the same; a datacenter left out means "the cluster's".
    const norm = (v: unknown) => (v === "" || v === null ? undefined : v);
    const replaces = REPLACE_ON.filter((k) => norm(n[k]) !== norm(o[k]) && !(k === "datacenter" && norm(n[k]) === undefined));
    const drift = (o.missingHosts?.length ?? 0) > 0;
    const changes = replaces.length > 0 || n.vlanId !== o.vlanId || (n.forceDelete ?? false) !== (o.forceDelete ?? false) || drift;
    return { changes, replaces: [...replaces], deleteBeforeReplace: replaces.length > 0 };
  },

  async create(ctx, inputs) {
    const r = stripProvider(inputs) as unknown as Resolved;
    const client = await ctx.client();
    if (r.kind === "distributed") {
      const cluster = r.clusterName ? await clusterOf(client, r) : undefined;
      const dc = cluster?.datacenter ?? (await getDatacenter(client, r.datacenter));
      const dvs = await getDistributedSwitch(client, dc, r.switch!);
      const pg = await createDistributedPortGroup(client, dvs, { name: r.name, vlanId: r.vlanId, binding: r.portBinding ?? "ephemeral" });
      const outs: PortGroupState = {
        ...r,
        portBinding: r.portBinding ?? "ephemeral",
        clusterName: r.clusterName ?? "",
        datacenter: dc.name,
        hostSwitches: {},
        hosts: [],
        missingHosts: [],
        networkId: pg.ref.toString(),
        switchUuid: dvs.uuid,
        portgroupKey: pg.key,
      };
      return { id: pg.ref.toString(), outs };
    }

    const cluster = await clusterOf(client, r);
    const hosts = await getHostNetworking(client, cluster.hosts);
    const taken = hosts.filter((h) => h.portgroups.some((p) => p.name === r.name));
    if (taken.length) {
      throw new DuplicateNameFault(
        "DuplicateName",
        `port group "${r.name}" already exists on ${taken.map((h) => h.hostName).join(", ")}; import it or choose another name`,
        { name: r.name },
      );
    }
    const { plan, problems } = planSwitches(hosts, r.switch, ctx.config().vlanInterface);
    if (problems.length) throw new NotFoundError(problems.join("; "));

    // Add on every host at once; if any fails, take it off the hosts that got it.
    const results = await Promise.allSettled(
      hosts.map((h) => addStandardPortGroup(client, h.networkSystem, { name: r.name, vlanId: r.vlanId, vswitchName: plan.get(h.host.toString())! })),
    );
    const failed = results.flatMap((res, i) => (res.status === "rejected" ? [{ host: hosts[i]!, reason: res.reason as unknown }] : []));
    if (failed.length) {
      await Promise.allSettled(
        hosts.filter((_, i) => results[i]!.status === "fulfilled").map((h) => removeStandardPortGroup(client, h.networkSystem, r.name)),
      );
      const first = failed[0]!;
      throw new Error(
        `port group "${r.name}" could not be added on ${failed.map((f) => f.host.hostName).join(", ")} (${(first.reason as Error)?.message ?? String(first.reason)}); ` +
          `it was removed again from the hosts that got it`,
      );
    }
    const network = await findNetwork(client, cluster.datacenter, r.name);
    const outs: PortGroupState = {
      ...r,
      clusterName: cluster.name,
      datacenter: cluster.datacenter.name,
      hostSwitches: Object.fromEntries(hosts.map((h) => [h.hostName, plan.get(h.host.toString())!])),
      hosts: hosts.map((h) => h.hostName).sort(),
      missingHosts: [],
      networkId: network?.toString() ?? "",
    };
    return { id: standardId(cluster, r.name), outs };
  },

  async read(ctx, id, props) {
    const s = stripProvider(props) as unknown as PortGroupState;
    const client = await ctx.client();
    if (s.kind === "distributed") {
      const pg = await getDistributedPortGroup(client, MoRef.parse(s.networkId || id));
      if (!pg) return { id: "", props: {} };
      return { id, props: { ...s, name: pg.name, vlanId: pg.vlanId ?? s.vlanId, portgroupKey: pg.key } };
    }
    let cluster: Cluster;
    try {
      cluster = await clusterOf(client, s);
    } catch (err) {
      if (err instanceof NotFoundError) return { id: "", props: {} };
      throw err;
    }
    const hosts = await getHostNetworking(client, cluster.hosts);
    const present = hosts.flatMap((h) => {
      const pg = h.portgroups.find((p) => p.name === s.name);
      return pg ? [{ h, pg }] : [];
    });
    if (present.length === 0) return { id: "", props: {} };
    const drifted = present.find((p) => p.pg.vlanId !== s.vlanId);
    const network = await findNetwork(client, cluster.datacenter, s.name);
    const outs: PortGroupState = {
      ...s,
      vlanId: drifted ? drifted.pg.vlanId : s.vlanId,
      ...presence(hosts, s.name),
      networkId: network?.toString() ?? s.networkId,
    };
    return { id, props: outs };
  },

  async update(ctx, _id, olds, news) {
    const o = olds as unknown as PortGroupState;
    const n = stripProvider(news) as unknown as Resolved;
    const client = await ctx.client();
    if (o.kind === "distributed") {
      const pg = await getDistributedPortGroup(client, MoRef.parse(o.networkId));
      if (!pg) throw new NotFoundError(`distributed port group ${o.name} (${o.networkId}) no longer exists; refresh to re-create it`);
      if (pg.vlanId !== n.vlanId) await setDistributedPortGroupVlan(client, pg, n.vlanId);
      return { outs: { ...o, vlanId: n.vlanId, forceDelete: n.forceDelete } };
    }
    const cluster = await clusterOf(client, o);
    const hosts = await getHostNetworking(client, cluster.hosts);
    const missing = hosts.filter((h) => !h.portgroups.some((p) => p.name === o.name));
    const { plan, problems } = planSwitches(missing, n.switch, ctx.config().vlanInterface);
    if (problems.length) throw new NotFoundError(problems.join("; "));
    await Promise.all(
      hosts.map(async (h) => {
        const pg = h.portgroups.find((p) => p.name === o.name);
        if (!pg) {
          await addStandardPortGroup(client, h.networkSystem, { name: o.name, vlanId: n.vlanId, vswitchName: plan.get(h.host.toString())! });
        } else if (pg.vlanId !== n.vlanId) {
          await updateStandardPortGroup(client, h.networkSystem, { name: o.name, vlanId: n.vlanId, vswitchName: pg.vswitchName });
        }
      }),
    );
    const after = await getHostNetworking(client, cluster.hosts);
    const outs: PortGroupState = {
      ...o,
      vlanId: n.vlanId,
      forceDelete: n.forceDelete,
      ...presence(after, o.name),
    };
    return { outs };
  },

  async delete(ctx, _id, props) {
    const s = stripProvider(props) as unknown as PortGroupState;
    const client = await ctx.client();
    const network = s.kind === "distributed" ? MoRef.parse(s.networkId) : s.networkId ? MoRef.parse(s.networkId) : undefined;
    if (network && !s.forceDelete) {
      const vms = await networkVms(client, network);
      if (vms.length > 0) {
        throw new VimFault(
          "ResourceInUse",
          `port group "${s.name}" is used by ${vms.length} VM${vms.length === 1 ? "" : "s"} (${vms
            .slice(0, 5)
            .map((v) => v.name)
            .join(", ")}${vms.length > 5 ? ", ..." : ""}): move their NICs to another network first, or set forceDelete: true`,
        );
      }
    }
    if (s.kind === "distributed") {
      if (await getDistributedPortGroup(client, network!)) await destroyDistributedPortGroup(client, network!);
      return;
    }
    let cluster: Cluster;
    try {
      cluster = await clusterOf(client, s);
    } catch (err) {
      if (err instanceof NotFoundError) return; // the cluster is gone, and the port group with it
      throw err;
    }
    const hosts = await getHostNetworking(client, cluster.hosts);
    await Promise.all(
      hosts
        .filter((h) => h.portgroups.some((p) => p.name === s.name))
        .map((h) => removeStandardPortGroup(client, h.networkSystem, s.name)),
    );
  },
};
