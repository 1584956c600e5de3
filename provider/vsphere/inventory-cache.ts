// What networking decisions need, read in one property-collector round trip, and
// kept per client (so per provider process) so that check and create do not read
// it twice.
//
// One RetrievePropertiesEx traverses from the root folder: Folder.childEntity
// (nested folders, datacenters) -> Datacenter.hostFolder -> ... ->
// ClusterComputeResource.host, reading the clusters and, for each host, its name,
// network system and config.network (vSwitches, port groups with their policy,
// physical NICs); and/or Datacenter.networkFolder -> ... -> the distributed
// switches and their port groups. Folders' `parent` ties each object to its
// datacenter, since a traversal returns a flat list.
//
// Invalidation: a write to a host's networking marks that host stale (the next
// look-up re-reads it); a write to a distributed switch drops the switch facet;
// `fresh: true` (refresh, import, delete decisions) always reads again. A caller
// that sees a call fail in a way that proves the cache wrong (AlreadyExists,
// NotFound) invalidates and reads again before deciding.
import { z } from "zod";
import type { VimClient } from "./client.js";
import type { Datacenter } from "./inventory.js";
import { PropertyCollector, type ObjectSpec, type PropertyFilterSpec, type RawObjectContent } from "./property.js";
import { arrayOf, dataObject, int, moRef, str } from "./schema.js";
import type { MoRef, VimObject } from "./soap/xml.js";

/** A standard port group as one host holds it (policy as read, to send back unchanged). */
export interface HostPortGroup {
  name: string;
  vlanId: number;
  vswitchName: string;
  policy: VimObject | undefined;
}

/** One host's standard networking. */
export interface HostNetworking {
  host: MoRef;
  hostName: string;
  networkSystem: MoRef;
  vswitches: Array<{ name: string; pnicDevices: string[] }>;
  portgroups: HostPortGroup[];
  /** The host's networks (read only when asked for). */
  networks?: MoRef[];
}

export interface ClusterNode {
  ref: MoRef;
  name: string;
  datacenter: Datacenter;
  hosts: MoRef[];
}

export interface DistributedPortGroupNode {
  ref: MoRef;
  name: string;
  key: string;
  switchRef: MoRef;
  binding: string;
  configVersion: string | undefined;
  /** undefined for trunk or private VLANs. */
  vlanId: number | undefined;
}

export interface SwitchNode {
  ref: MoRef;
  name: string;
  uuid: string;
  datacenter: Datacenter;
  portgroups: DistributedPortGroupNode[];
}

/** What one traversal read. */
export interface InventorySnapshot {
  datacenters: Datacenter[];
  clusters: ClusterNode[];
  /** By host reference (`HostSystem:host-1`). */
  hosts: Map<string, HostNetworking>;
  /** Network name by reference, for the hosts' networks (when asked for). */
  networks: Map<string, { ref: MoRef; name: string }>;
  switches: SwitchNode[];
  /** Objects the caller's extra filter specs selected. */
  extra: RawObjectContent[];
}

export interface LoadOptions {
  /** Clusters, their hosts and the hosts' networking. */
  hosts?: boolean;
  /** The hosts' networks (Network names), through HostSystem.network. */
  networks?: boolean;
  /** Distributed switches and their port groups. */
  switches?: boolean;
  /** More filter specs answered in the same round trip (their objects come back in `extra`). */
  extra?: PropertyFilterSpec[];
}

const DatacenterProps = z.object({ name: str, vmFolder: moRef, hostFolder: moRef, datastoreFolder: moRef, networkFolder: moRef });
const FolderProps = z.object({ parent: moRef.optional() });
const ClusterProps = z.object({ name: str, parent: moRef.optional(), host: arrayOf(moRef) });
const HOST_PATHS = ["name", "configManager.networkSystem", "config.network.vswitch", "config.network.portgroup", "config.network.pnic"];
const HostProps = z.object({
  name: str,
  "configManager.networkSystem": moRef,
  "config.network.vswitch": arrayOf(dataObject({ name: str, pnic: arrayOf(str) })),
  "config.network.portgroup": arrayOf(
    dataObject({ spec: dataObject({ name: str, vlanId: int, vswitchName: str, policy: z.unknown().optional() }) }),
  ),
  "config.network.pnic": arrayOf(dataObject({ key: str, device: str })),
  network: arrayOf(moRef).optional(),
});
const NetworkProps = z.object({ name: str });
const SwitchProps = z.object({ name: str, uuid: str, parent: moRef.optional() });
const PORTGROUP_PATHS = ["name", "key", "config.distributedVirtualSwitch", "config.type", "config.configVersion", "config.defaultPortConfig"];
const PortgroupProps = z.object({
  name: str,
  key: str,
  "config.distributedVirtualSwitch": moRef,
  "config.type": str.optional(),
  "config.configVersion": str.optional(),
  "config.defaultPortConfig": dataObject({
    vlan: dataObject({ $type: str.optional(), vlanId: z.unknown().optional() }).optional(),
  }).optional(),
});

/**
 * The ObjectSpec that reaches every VM under `container` (the root folder, a datacenter's
 * VM folder): through nested folders, datacenters' VM folders and vApps, in one traversal,
 * with no ContainerView to create and destroy.
 */
export function vmsUnder(container: MoRef): { obj: MoRef; skip: boolean; selectSet: unknown[] } {
  return {
    obj: container,
    skip: true,
    selectSet: [
      traversal("folderChildren", "Folder", "childEntity", ["folderChildren", "dcVms", "vAppVms"]),
      traversal("dcVms", "Datacenter", "vmFolder", ["folderChildren"]),
      traversal("vAppVms", "VirtualApp", "vm"),
    ],
  };
}

/** A TraversalSpec, vim25 field names in schema order; `next` names the SelectionSpecs to follow. */
export function traversal(name: string, type: string, path: string, next: string[] = []): Record<string, unknown> {
  return { $type: "TraversalSpec", name, type, path, skip: false, selectSet: next.map((n) => ({ name: n })) };
}

/** The host look-up paths and how to turn them into HostNetworking. */
export function hostPaths(networks: boolean): string[] {
  return networks ? [...HOST_PATHS, "network"] : HOST_PATHS;
}

export function toHostNetworking(c: RawObjectContent): HostNetworking {
  const p = HostProps.parse(c.props);
  const deviceOf = new Map(p["config.network.pnic"].map((n) => [n.key, n.device]));
  return {
    host: c.obj,
    hostName: p.name,
    networkSystem: p["configManager.networkSystem"],
    vswitches: p["config.network.vswitch"].map((v) => ({ name: v.name, pnicDevices: v.pnic.map((k) => deviceOf.get(k) ?? k) })),
    portgroups: p["config.network.portgroup"].map((g) => ({
      name: g.spec.name,
      vlanId: g.spec.vlanId,
      vswitchName: g.spec.vswitchName,
      policy: isObject(g.spec.policy) ? compact(g.spec.policy) : undefined,
    })),
    ...(p.network ? { networks: p.network } : {}),
  };
}

/**
 * A policy as read, ready to send back: empty elements (`<security/>`, read as "")
 * are left out, which means the same (nothing overridden) and is what a typed
 * writer accepts for a data object field.
 */
function compact(o: VimObject): VimObject {
  const out: VimObject = {};
  for (const [k, v] of Object.entries(o)) {
    if (v === "" || v === undefined) continue;
    out[k] = isObject(v) ? compact(v) : v;
  }
  return out;
}

function isObject(v: unknown): v is VimObject {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !("type" in v && "value" in v && Object.keys(v).length === 2);
}

export function toPortgroupNode(c: RawObjectContent): DistributedPortGroupNode {
  const p = PortgroupProps.parse(c.props);
  const vlan = p["config.defaultPortConfig"]?.vlan;
  const vlanId = vlan === undefined ? 0 : vlan.$type !== "VmwareDistributedVirtualSwitchTrunkVlanSpec" && typeof vlan.vlanId === "string" ? Number(vlan.vlanId) : undefined;
  return {
    ref: c.obj,
    name: p.name,
    key: p.key,
    switchRef: p["config.distributedVirtualSwitch"],
    binding: p["config.type"] ?? "",
    configVersion: p["config.configVersion"],
    vlanId,
  };
}

export const PORTGROUP_PROPS = PORTGROUP_PATHS;

/** Reads the inventory facets asked for in one RetrievePropertiesEx (plus pages). */
export async function loadInventory(client: VimClient, opts: LoadOptions): Promise<InventorySnapshot> {
  const follow = ["folderChildren", ...(opts.hosts ? ["dcHosts", "clusterHosts"] : []), ...(opts.switches ? ["dcNetworks"] : [])];
  const selectSet = [
    traversal("folderChildren", "Folder", "childEntity", follow),
    ...(opts.hosts ? [traversal("dcHosts", "Datacenter", "hostFolder", ["folderChildren"])] : []),
    ...(opts.hosts ? [traversal("clusterHosts", "ClusterComputeResource", "host", opts.networks ? ["hostNetworks"] : [])] : []),
    ...(opts.hosts && opts.networks ? [traversal("hostNetworks", "HostSystem", "network")] : []),
    ...(opts.switches ? [traversal("dcNetworks", "Datacenter", "networkFolder", ["folderChildren"])] : []),
  ];
  const root: ObjectSpec = { obj: client.serviceContent.rootFolder, skip: false, selectSet };
  const propSet = [
    { type: "Folder", pathSet: ["parent"] },
    { type: "Datacenter", pathSet: Object.keys(DatacenterProps.shape) },
    ...(opts.hosts ? [{ type: "ClusterComputeResource", pathSet: Object.keys(ClusterProps.shape) }] : []),
    ...(opts.hosts ? [{ type: "HostSystem", pathSet: hostPaths(opts.networks ?? false) }] : []),
    ...(opts.hosts && opts.networks ? [{ type: "Network", pathSet: ["name"] }] : []),
    ...(opts.switches ? [{ type: "DistributedVirtualSwitch", pathSet: Object.keys(SwitchProps.shape) }] : []),
    ...(opts.switches ? [{ type: "DistributedVirtualPortgroup", pathSet: PORTGROUP_PATHS }] : []),
  ];
  const contents = await new PropertyCollector(client).retrieve([{ propSet, objectSet: [root] }, ...(opts.extra ?? [])]);
  return buildSnapshot(contents, opts);
}

function buildSnapshot(contents: RawObjectContent[], opts: LoadOptions): InventorySnapshot {
  const parents = new Map<string, MoRef | undefined>();
  const datacenters = new Map<string, Datacenter>();
  const clusters: Array<{ obj: MoRef; props: z.infer<typeof ClusterProps> }> = [];
  const hosts = new Map<string, HostNetworking>();
  const networks = new Map<string, { ref: MoRef; name: string }>();
  const switches: Array<{ obj: MoRef; props: z.infer<typeof SwitchProps> }> = [];
  const portgroups: DistributedPortGroupNode[] = [];
  const extra: RawObjectContent[] = [];
  for (const c of contents) {
    const t = c.obj.type;
    if (t === "Folder") parents.set(c.obj.toString(), FolderProps.parse(c.props).parent);
    else if (t === "Datacenter") datacenters.set(c.obj.toString(), { ref: c.obj, ...DatacenterProps.parse(c.props) });
    else if (t === "ClusterComputeResource" && opts.hosts) clusters.push({ obj: c.obj, props: ClusterProps.parse(c.props) });
    else if (t === "HostSystem" && opts.hosts) hosts.set(c.obj.toString(), toHostNetworking(c));
    else if (t === "Network" && opts.networks && "name" in c.props) networks.set(c.obj.toString(), { ref: c.obj, name: NetworkProps.parse(c.props).name });
    else if (t.endsWith("DistributedVirtualSwitch") && opts.switches && "uuid" in c.props) switches.push({ obj: c.obj, props: SwitchProps.parse(c.props) });
    else if (t === "DistributedVirtualPortgroup" && opts.switches && "key" in c.props) portgroups.push(toPortgroupNode(c));
    else extra.push(c);
  }
  const datacenterOf = (start: MoRef | undefined): Datacenter | undefined => {
    for (let ref = start, hops = 0; ref && hops < 64; ref = parents.get(ref.toString()), hops++) {
      const dc = datacenters.get(ref.toString());
      if (dc) return dc;
    }
    return undefined;
  };
  const unique = (refs: MoRef[]) => [...new Map(refs.map((r) => [r.toString(), r])).values()];
  return {
    datacenters: [...datacenters.values()],
    clusters: clusters.flatMap((c) => {
      const datacenter = datacenterOf(c.props.parent);
      return datacenter ? [{ ref: c.obj, name: c.props.name, datacenter, hosts: unique(c.props.host) }] : [];
    }),
    hosts,
    networks,
    switches: switches.flatMap((s) => {
      const datacenter = datacenterOf(s.props.parent);
      if (!datacenter) return [];
      return [{ ref: s.obj, name: s.props.name, uuid: s.props.uuid, datacenter, portgroups: portgroups.filter((p) => p.switchRef.equals(s.obj)) }];
    }),
    extra,
  };
}

/**
 * The per-client cache. Entries live as long as the client (one provider process)
 * unless a write or a failed call invalidates them.
 */
export class InventoryCache {
  #hosts: Promise<InventorySnapshot> | undefined;
  #switches: Promise<InventorySnapshot> | undefined;
  readonly #stale = new Set<string>();

  constructor(readonly client: VimClient) {}

  /** Datacenters, clusters and every cluster host's networking (one round trip when not cached). */
  async topology(opts: { fresh?: boolean; networks?: boolean; extra?: PropertyFilterSpec[] } = {}): Promise<InventorySnapshot> {
    if (opts.fresh || opts.networks || opts.extra || !this.#hosts) {
      const load = loadInventory(this.client, { hosts: true, networks: opts.networks ?? false, extra: opts.extra ?? [] });
      this.#hosts = load;
      this.#stale.clear();
      load.catch(() => {
        if (this.#hosts === load) this.#hosts = undefined;
      });
      return load;
    }
    const snap = await this.#hosts;
    if (this.#stale.size > 0) {
      // Re-read only the hosts a write touched (one round trip), in place.
      const refs = [...snap.hosts.values()].filter((h) => this.#stale.has(h.host.toString())).map((h) => h.host);
      this.#stale.clear();
      for (const h of (await readHosts(this.client, refs, false)).hosts) snap.hosts.set(h.host.toString(), h);
    }
    return snap;
  }

  /** Distributed switches and their port groups (one round trip when not cached). */
  switches(opts: { fresh?: boolean } = {}): Promise<InventorySnapshot> {
    if (opts.fresh || !this.#switches) {
      const load = loadInventory(this.client, { switches: true });
      this.#switches = load;
      load.catch(() => {
        if (this.#switches === load) this.#switches = undefined;
      });
    }
    return this.#switches;
  }

  /** After a write to these hosts' networking. */
  invalidateHosts(refs: MoRef[]): void {
    for (const r of refs) this.#stale.add(r.toString());
  }

  /** Stores host networking read elsewhere (e.g. right after a write). */
  async remember(hosts: HostNetworking[]): Promise<void> {
    const snap = await this.#hosts?.catch(() => undefined);
    if (!snap) return;
    for (const h of hosts) {
      snap.hosts.set(h.host.toString(), h);
      this.#stale.delete(h.host.toString());
    }
  }

  /** After a write to a distributed switch or its port groups. */
  invalidateSwitches(): void {
    this.#switches = undefined;
  }

  /** Forget everything (after a failed call proved the cache wrong). */
  invalidateAll(): void {
    this.#hosts = undefined;
    this.#switches = undefined;
    this.#stale.clear();
  }
}

/** Hosts' networking, and with `networks` the names of their Network objects, in one round trip. */
export async function readHosts(
  client: VimClient,
  refs: MoRef[],
  networks: boolean,
): Promise<{ hosts: HostNetworking[]; networks: Map<string, { ref: MoRef; name: string }> }> {
  if (refs.length === 0) return { hosts: [], networks: new Map() };
  const contents = await new PropertyCollector(client).retrieve([
    {
      propSet: [{ type: "HostSystem", pathSet: hostPaths(networks) }, ...(networks ? [{ type: "Network", pathSet: ["name"] }] : [])],
      objectSet: refs.map((obj) => ({ obj, ...(networks ? { selectSet: [traversal("hostNetworks", "HostSystem", "network")] } : {}) })),
      reportMissingObjectsInResults: true,
    },
  ]);
  return {
    hosts: contents.filter((c) => c.obj.type === "HostSystem" && c.missing.length === 0).map(toHostNetworking),
    networks: new Map(
      contents
        .filter((c) => c.obj.type === "Network" && "name" in c.props)
        .map((c) => [c.obj.toString(), { ref: c.obj, name: NetworkProps.parse(c.props).name }]),
    ),
  };
}

const caches = new WeakMap<VimClient, InventoryCache>();

/** The client's inventory cache (one per client, so one per provider process). */
export function inventoryCache(client: VimClient): InventoryCache {
  let c = caches.get(client);
  if (!c) {
    c = new InventoryCache(client);
    caches.set(client, c);
  }
  return c;
}
