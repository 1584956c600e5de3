// Inventory look-ups: datacenter, cluster by name with its hosts, root resource pool,
// datastores and networks; VMs by name, instance uuid or reference.
import { z } from "zod";
import type { VimClient } from "./client.js";
import { noteDatastores } from "./datastore.js";
import { ManagedObjectNotFoundFault, NotFoundError } from "./errors.js";
import { PropertyCollector, type Alongside } from "./property.js";
import { traversal, vmsUnder } from "./inventory-cache.js";
import { arrayOf, bool, dataObject, long, moRef, pathsOf, str } from "./schema.js";
import { MoRef } from "./soap/xml.js";

/** A datacenter and its four root folders. */
export interface Datacenter {
  ref: MoRef;
  name: string;
  vmFolder: MoRef;
  hostFolder: MoRef;
  datastoreFolder: MoRef;
  networkFolder: MoRef;
}

const DatacenterProps = z.object({ name: str, vmFolder: moRef, hostFolder: moRef, datastoreFolder: moRef, networkFolder: moRef });

/**
 * The datacenter of that name; without a name, the only one (an error names the
 * choices when there are several). With `datastores`, the same round trip also reads
 * its datastores' names and browsers, so a datastore search that follows needs no read
 * of its own (datastore.ts findDatastore).
 */
export async function getDatacenter(client: VimClient, name?: string, opts: { datastores?: boolean; alongside?: Alongside } = {}): Promise<Datacenter> {
  const found = await walk(client, false, opts.datastores ?? false, opts.alongside);
  const all = found.datacenters;
  const pick = name === undefined ? (all.length === 1 ? all[0] : undefined) : all.find((d) => d.props.name === name);
  if (!pick) {
    const names = all.map((d) => d.props.name).join(", ") || "none";
    throw new NotFoundError(
      name === undefined ? `several datacenters (${names}): name the one to use` : `datacenter "${name}" not found (there are: ${names})`,
      "datacenter",
      name,
      name === undefined && all.length > 1,
    );
  }
  const dc: Datacenter = { ref: pick.obj, ...pick.props };
  if (opts.datastores) noteDatastores(client, dc, found.datastores.filter((d) => d.datacenter.ref.equals(dc.ref)).map((d) => d.handle), true);
  return dc;
}

const dcPaths = new WeakMap<VimClient, Map<string, Promise<string>>>();
const ParentProps = z.object({ name: str, parent: moRef.optional() });

/**
 * The datacenter's inventory path from the root folder ("Folder1/DC0"), which is what
 * a datastore URL's `dcPath` wants for a datacenter in nested folders. Known without a
 * call for a datacenter a look-up found (the walk reads the folders' names on its way);
 * else read once per client.
 */
export function datacenterPath(client: VimClient, datacenter: Datacenter): Promise<string> {
  const perClient = knownDcPaths(client);
  const key = datacenter.ref.toString();
  let entry = perClient.get(key);
  if (!entry) {
    entry = (async () => {
      const pc = new PropertyCollector(client);
      const names = [datacenter.name];
      let parent = (await pc.get(datacenter.ref, ParentProps)).parent;
      for (let hops = 0; parent && !parent.equals(client.serviceContent.rootFolder) && hops < 64; hops++) {
        const p = await pc.get(parent, ParentProps);
        names.unshift(p.name);
        parent = p.parent;
      }
      return names.join("/");
    })();
    perClient.set(key, entry);
    entry.catch(() => perClient.delete(key));
  }
  return entry;
}

function knownDcPaths(client: VimClient): Map<string, Promise<string>> {
  let perClient = dcPaths.get(client);
  if (!perClient) dcPaths.set(client, (perClient = new Map()));
  return perClient;
}

/**
 * Datacenters, and with `clusters` every cluster with its datacenter, with `datastores`
 * every datastore's name and browser with its datacenter, in one property-collector
 * traversal from the root folder (through nested folders and each datacenter's host or
 * datastore folder; VMs and networks are not visited).
 */
async function walk(
  client: VimClient,
  clusters: boolean,
  datastores = false,
  /** Reads of other objects in the same round trip (of types the walk does not visit). */
  alongside?: Alongside,
): Promise<{
  datacenters: Array<{ obj: MoRef; props: z.infer<typeof DatacenterProps> }>;
  clusters: Array<{ obj: MoRef; props: z.infer<typeof ClusterProps>; datacenter: Datacenter }>;
  datastores: Array<{ handle: { ref: MoRef; name: string; browser: MoRef }; datacenter: Datacenter }>;
}> {
  const follow = ["folderChildren", ...(clusters ? ["dcHosts"] : []), ...(datastores ? ["dcDatastores"] : [])];
  const contents = await new PropertyCollector(client).retrieve([
    {
      propSet: [
        // The folders' names and parents: a datacenter's inventory path (datacenterPath) comes free.
        { type: "Datacenter", pathSet: [...pathsOf(DatacenterProps), "parent"] },
        { type: "Folder", pathSet: ["parent", "name"] },
        ...(clusters ? [{ type: "ClusterComputeResource", pathSet: [...pathsOf(ClusterProps), "parent"] }] : []),
        ...(datastores ? [{ type: "Datastore", pathSet: ["name", "browser", "parent"] }, { type: "StoragePod", pathSet: ["parent"] }] : []),
      ],
      objectSet: [
        {
          obj: client.serviceContent.rootFolder,
          skip: false,
          selectSet: [
            traversal("folderChildren", "Folder", "childEntity", follow),
            ...(clusters ? [traversal("dcHosts", "Datacenter", "hostFolder", ["folderChildren"])] : []),
            ...(datastores ? [traversal("dcDatastores", "Datacenter", "datastoreFolder", ["folderChildren", "podChildren"]), traversal("podChildren", "StoragePod", "childEntity", [])] : []),
          ],
        },
      ],
    },
    ...(alongside?.specs ?? []),
  ]);
  if (alongside) alongside.reads = contents.filter((c) => !WALKED.has(c.obj.type));
  const parents = new Map<string, MoRef | undefined>();
  const folderNames = new Map<string, string>();
  const datacenters = new Map<string, Datacenter>();
  const dcs: Array<{ obj: MoRef; props: z.infer<typeof DatacenterProps> }> = [];
  for (const c of contents) {
    if (c.obj.type === "Datacenter") {
      const props = DatacenterProps.parse(c.props);
      dcs.push({ obj: c.obj, props });
      datacenters.set(c.obj.toString(), { ref: c.obj, ...props });
    } else if (c.obj.type === "Folder" || c.obj.type === "ClusterComputeResource" || c.obj.type === "StoragePod" || c.obj.type === "Datastore") {
      parents.set(c.obj.toString(), c.props.parent instanceof MoRef ? c.props.parent : undefined);
      if (c.obj.type === "Folder" && typeof c.props.name === "string") folderNames.set(c.obj.toString(), c.props.name);
    }
  }
  // Each datacenter's inventory path, from the folders read on the way.
  const known = knownDcPaths(client);
  for (const c of contents) {
    if (c.obj.type !== "Datacenter") continue;
    const names = [String(c.props.name)];
    let complete = true;
    let r = c.props.parent instanceof MoRef ? c.props.parent : undefined;
    for (let hops = 0; r && !r.equals(client.serviceContent.rootFolder) && hops < 64; r = parents.get(r.toString()), hops++) {
      const name = folderNames.get(r.toString());
      if (name === undefined) {
        complete = false;
        break;
      }
      names.unshift(name);
    }
    if (complete) known.set(c.obj.toString(), Promise.resolve(names.join("/")));
  }
  const datacenterOf = (ref: MoRef): Datacenter | undefined => {
    for (let r: MoRef | undefined = ref, hops = 0; r && hops < 64; r = parents.get(r.toString()), hops++) {
      const dc = datacenters.get(r.toString());
      if (dc) return dc;
    }
    return undefined;
  };
  return {
    datacenters: dcs,
    clusters: contents.flatMap((c) => {
      if (c.obj.type !== "ClusterComputeResource") return [];
      const datacenter = datacenterOf(c.obj);
      return datacenter ? [{ obj: c.obj, props: ClusterProps.parse(c.props), datacenter }] : [];
    }),
    datastores: contents.flatMap((c) => {
      if (c.obj.type !== "Datastore") return [];
      const datacenter = datacenterOf(c.obj);
      const p = DatastoreHandleProps.safeParse(c.props);
      return datacenter && p.success ? [{ handle: { ref: c.obj, name: p.data.name, browser: p.data.browser }, datacenter }] : [];
    }),
  };
}

const DatastoreHandleProps = z.object({ name: str, browser: moRef });

/** The types walk visits: another read beside it gets the contents of every other type. */
const WALKED = new Set(["Folder", "Datacenter", "ClusterComputeResource", "Datastore", "StoragePod"]);

/** A cluster (ClusterComputeResource): its hosts, root resource pool, datastores, networks and DRS state. */
export interface Cluster {
  ref: MoRef;
  name: string;
  datacenter: Datacenter;
  hosts: MoRef[];
  resourcePool: MoRef;
  datastores: MoRef[];
  networks: MoRef[];
  drsEnabled: boolean;
  drsBehavior: string | undefined;
}

const ClusterProps = z.object({
  name: str,
  host: arrayOf(moRef),
  resourcePool: moRef,
  datastore: arrayOf(moRef),
  network: arrayOf(moRef),
  "configurationEx": dataObject({
    drsConfig: dataObject({ enabled: bool.optional(), defaultVmBehavior: str.optional() }).optional(),
  }),
});

function uniqueRefs(refs: MoRef[]): MoRef[] {
  return [...new Map(refs.map((r) => [r.toString(), r])).values()];
}

function toCluster(hit: { obj: MoRef; props: z.infer<typeof ClusterProps> }, datacenter: Datacenter): Cluster {
  const p = hit.props;
  return {
    ref: hit.obj,
    name: p.name,
    datacenter,
    hosts: uniqueRefs(p.host),
    resourcePool: p.resourcePool,
    datastores: uniqueRefs(p.datastore),
    networks: uniqueRefs(p.network),
    drsEnabled: p.configurationEx.drsConfig?.enabled ?? false,
    drsBehavior: p.configurationEx.drsConfig?.defaultVmBehavior,
  };
}

/** The cluster (`cluster_name`) in the datacenter; the error names the clusters there are. */
export async function getCluster(client: VimClient, datacenter: Datacenter, name: string): Promise<Cluster> {
  // One traversal of the datacenter's host folder (nested folders included).
  const all = (
    await new PropertyCollector(client).retrieve([
      {
        propSet: [{ type: "ClusterComputeResource", pathSet: pathsOf(ClusterProps) }],
        objectSet: [{ obj: datacenter.hostFolder, skip: false, selectSet: [traversal("folderChildren", "Folder", "childEntity", ["folderChildren"])] }],
      },
    ])
  )
    .filter((c) => c.obj.type === "ClusterComputeResource")
    .map((c) => ({ obj: c.obj, props: ClusterProps.parse(c.props) }));
  const hit = all.find((c) => c.props.name === name);
  if (!hit) {
    const names = all.map((c) => c.props.name).join(", ") || "none";
    throw new NotFoundError(`cluster "${name}" not found in datacenter ${datacenter.name} (there are: ${names})`, "cluster", name);
  }
  return toCluster(hit, datacenter);
}

/**
 * A cluster by name in any datacenter (Nova's cluster_name names no datacenter),
 * or in the named one. Several clusters of that name in different datacenters is
 * an error that asks for the datacenter.
 */
export async function findCluster(client: VimClient, name: string, datacenterName?: string): Promise<Cluster> {
  if (datacenterName !== undefined) return getCluster(client, await getDatacenter(client, datacenterName), name);
  const found: Cluster[] = [];
  const names: string[] = [];
  for (const c of (await walk(client, true)).clusters) {
    names.push(`${c.props.name} (${c.datacenter.name})`);
    if (c.props.name === name) found.push(toCluster(c, c.datacenter));
  }
  if (found.length === 1) return found[0]!;
  if (found.length > 1) {
    throw new NotFoundError(
      `cluster "${name}" exists in several datacenters (${found.map((c) => c.datacenter.name).join(", ")}): name the datacenter`,
      "datacenter",
      undefined,
      true,
    );
  }
  throw new NotFoundError(`cluster "${name}" not found (there are: ${names.join(", ") || "none"})`, "cluster", name);
}

/** A host's name and run state. */
export interface Host {
  ref: MoRef;
  name: string;
  connectionState: string;
  inMaintenanceMode: boolean;
  powerState: string | undefined;
}

const HostProps = z.object({
  name: str,
  "runtime.connectionState": str,
  "runtime.inMaintenanceMode": bool,
  "runtime.powerState": str.optional(),
});

/** Name, connection, maintenance and power state of each host. */
export async function getHosts(client: VimClient, refs: MoRef[]): Promise<Host[]> {
  const hosts = await new PropertyCollector(client).getMany(refs, HostProps);
  return hosts.map((h) => ({
    ref: h.obj,
    name: h.props.name,
    connectionState: h.props["runtime.connectionState"],
    inMaintenanceMode: h.props["runtime.inMaintenanceMode"],
    powerState: h.props["runtime.powerState"],
  }));
}

/** A datastore's capacity, free space, accessibility and the hosts that mount it. */
export interface Datastore {
  ref: MoRef;
  name: string;
  url: string;
  type: string;
  capacity: number;
  freeSpace: number;
  accessible: boolean;
  maintenanceMode: string | undefined;
  /** Hosts that mount it (mounted and accessible). */
  hosts: MoRef[];
  /** Its HostDatastoreBrowser (for searches), when it was read. */
  browser?: MoRef | undefined;
}

/** A datastore's selected properties (one source for the pathSet and the parse). */
export const DatastoreProps = z.object({
  summary: dataObject({
    name: str,
    url: str,
    type: str,
    capacity: long,
    freeSpace: long,
    accessible: bool,
    maintenanceMode: str.optional(),
  }),
  host: arrayOf(
    dataObject({
      key: moRef,
      mountInfo: dataObject({ mounted: bool.optional(), accessible: bool.optional() }),
    }),
  ),
  browser: moRef.optional(),
});

/** A Datastore record from its selected properties. */
export function toDatastore(ref: MoRef, p: z.infer<typeof DatastoreProps>): Datastore {
  return {
    ref,
    name: p.summary.name,
    url: p.summary.url,
    type: p.summary.type,
    capacity: p.summary.capacity,
    freeSpace: p.summary.freeSpace,
    accessible: p.summary.accessible,
    maintenanceMode: p.summary.maintenanceMode,
    hosts: p.host.filter((m) => m.mountInfo.mounted !== false && m.mountInfo.accessible !== false).map((m) => m.key),
    browser: p.browser,
  };
}

/** Reads datastores (other references in the list are ignored; deleted ones are left out). */
export async function getDatastores(client: VimClient, refs: MoRef[]): Promise<Datastore[]> {
  const dss = await new PropertyCollector(client).getMany(refs.filter((r) => r.type === "Datastore"), DatastoreProps);
  return dss.map((d) => toDatastore(d.obj, d.props));
}

/** A network a VM NIC can use. */
export type Network =
  | { kind: "standard"; ref: MoRef; name: string }
  | { kind: "distributed"; ref: MoRef; name: string; portgroupKey: string; switchRef: MoRef; switchUuid: string; uplink: boolean }
  | { kind: "opaque"; ref: MoRef; name: string };

const NetworkProps = z.object({ name: str });
const PortgroupProps = z.object({
  name: str,
  key: str,
  "config.distributedVirtualSwitch": moRef,
  "config.uplink": bool.optional(),
  tag: arrayOf(dataObject({ key: str })),
});
const SwitchProps = z.object({ uuid: str });

/** Standard port groups, distributed port groups (with their switch) and opaque networks. */
export async function getNetworks(client: VimClient, refs: MoRef[]): Promise<Network[]> {
  const pc = new PropertyCollector(client);
  const known = refs.filter((r) => r.type === "Network" || r.type === "OpaqueNetwork" || r.type === "DistributedVirtualPortgroup");
  if (known.length === 0) return [];
  // One read for every kind (each type's own properties), then one for the switches' uuids.
  const contents = await pc.retrieve([
    {
      propSet: [
        { type: "Network", pathSet: pathsOf(NetworkProps) },
        { type: "DistributedVirtualPortgroup", pathSet: pathsOf(PortgroupProps) },
      ],
      objectSet: known.map((obj) => ({ obj })),
      reportMissingObjectsInResults: true,
    },
  ]);
  const found = contents.filter((c) => !c.missing.some((m) => m.fault instanceof ManagedObjectNotFoundFault));
  const pgs = found.filter((c) => c.obj.type === "DistributedVirtualPortgroup").map((c) => ({ obj: c.obj, props: PortgroupProps.parse(c.props) }));
  const switches = new Map<string, string>();
  const switchRefs = [...new Map(pgs.map((p) => [p.props["config.distributedVirtualSwitch"].toString(), p.props["config.distributedVirtualSwitch"]])).values()];
  for (const sw of await pc.getMany(switchRefs, SwitchProps)) switches.set(sw.obj.toString(), sw.props.uuid);
  const out: Network[] = [];
  for (const c of found.filter((f) => f.obj.type === "Network")) out.push({ kind: "standard", ref: c.obj, name: NetworkProps.parse(c.props).name });
  for (const c of found.filter((f) => f.obj.type === "OpaqueNetwork")) out.push({ kind: "opaque", ref: c.obj, name: NetworkProps.parse(c.props).name });
  for (const p of pgs) {
    const sw = p.props["config.distributedVirtualSwitch"];
    out.push({
      kind: "distributed",
      ref: p.obj,
      name: p.props.name,
      portgroupKey: p.props.key,
      switchRef: sw,
      switchUuid: switches.get(sw.toString()) ?? "",
      uplink: p.props["config.uplink"] ?? p.props.tag.some((t) => t.key === "SYSTEM/DVS.UPLINKPG"),
    });
  }
  return out;
}

/** A VM's reference, name, instance uuid and power state. */
export interface VmSummary {
  ref: MoRef;
  name: string;
  instanceUuid: string | undefined;
  powerState: string;
}

const VmProps = z.object({ name: str, "config.instanceUuid": str.optional(), "runtime.powerState": str });
const toVm = (v: { obj: MoRef; props: z.infer<typeof VmProps> }): VmSummary => ({
  ref: v.obj,
  name: v.props.name,
  instanceUuid: v.props["config.instanceUuid"],
  powerState: v.props["runtime.powerState"],
});

/**
 * Every VM under a folder (a datacenter's VM folder, or the root folder for all),
 * paged by maximum_objects: one traversal through nested folders, datacenters'
 * VM folders and vApps, with no ContainerView to create and destroy.
 */
export async function listVms(client: VimClient, container: MoRef): Promise<VmSummary[]> {
  const contents = await new PropertyCollector(client).retrieve([
    {
      propSet: [{ type: "VirtualMachine", pathSet: pathsOf(VmProps) }],
      objectSet: [vmsUnder(container)],
    },
  ]);
  return contents.filter((c) => c.obj.type === "VirtualMachine").map((c) => toVm({ obj: c.obj, props: VmProps.parse(c.props) }));
}

/** How to find a VM: by reference, by instance uuid, or by name. */
export type VmQuery = { ref: MoRef } | { instanceUuid: string } | { name: string };

/**
 * One VM by reference, instance uuid (SearchIndex) or name (in the datacenter).
 * Returns undefined when there is none; a name that several VMs carry is an error.
 */
export async function findVm(client: VimClient, query: VmQuery, datacenter?: Datacenter): Promise<VmSummary | undefined> {
  const pc = new PropertyCollector(client);
  if ("ref" in query) {
    try {
      return toVm({ obj: query.ref, props: await pc.get(query.ref, VmProps) });
    } catch (err) {
      if (err instanceof ManagedObjectNotFoundFault) return undefined;
      throw err;
    }
  }
  if ("instanceUuid" in query) {
    const searchIndex = client.serviceContent.searchIndex;
    if (!searchIndex) throw new NotFoundError(`${client.endpoint} has no SearchIndex`, "object");
    const found = await client.invoke("FindByUuid", searchIndex, {
      datacenter: datacenter?.ref,
      uuid: query.instanceUuid,
      vmSearch: true,
      instanceUuid: true,
    });
    const ref = found === undefined || found === "" ? undefined : moRef.parse(found);
    return ref ? findVm(client, { ref }) : undefined;
  }
  const container = datacenter?.vmFolder ?? client.serviceContent.rootFolder;
  const matches = (await listVms(client, container)).filter((v) => v.name === query.name);
  if (matches.length > 1) {
    throw new NotFoundError(
      `${matches.length} VMs are named "${query.name}" (${matches.map((m) => m.ref.value).join(", ")}): look it up by instance uuid`,
      "vm",
      query.name,
      true,
    );
  }
  return matches[0];
}
