// Instance: a VM in the cluster booted from a cached image, as Nova's VMware driver
// spawns an instance — a linked clone of the cached base (or a full copy), the
// flavor's CPUs, memory and root disk, NICs on port groups, a VNC console and a serial
// port — made by one CreateVM_Task (vmops.ts), refreshed from vCenter, resized and
// re-wired in place (vm-update.ts), and removed without Destroy_Task (vm-lifecycle.ts).
// This file stays thin: inputs and state; the work is in provider/vsphere.
import * as pulumi from "@pulumi/pulumi";
import { randomUUID } from "node:crypto";
import type { DriverConfig } from "../config.js";
import type { VimClient } from "../vsphere/client.js";
import { DatastorePath, fileExists } from "../vsphere/datastore.js";
import { NoSuitableDatastoreError, NotFoundError, VimFault } from "../vsphere/errors.js";
import { clearAgeMarkers } from "../vsphere/cache-sweep.js";
import { cacheLocation, copyToDatastore } from "../vsphere/image-cache.js";
import { getDatacenter, getDatastores, type Cluster, type Datacenter } from "../vsphere/inventory.js";
import { compatibleDatastores, findPolicy, StoragePolicyNotFoundError } from "../vsphere/pbm.js";
import { MoRef } from "../vsphere/soap/xml.js";
import { prepareRootDisk } from "../vsphere/root-disk.js";
import { removeVm, vmStateIn, vmStateSpec } from "../vsphere/vm-lifecycle.js";
import { findResourcePool, findVmFolder } from "../vsphere/vm-placement.js";
import { resolveVmId, readVm } from "../vsphere/vm-read.js";
import { plannedDevices, type RootDiskOptions, type VmSpecOptions } from "../vsphere/vm-spec.js";
import { applyUpdate, planUpdate, VmUpdateError } from "../vsphere/vm-update.js";
import type { VmChanges, VmView } from "../vsphere/vm-view.js";
import { spawnVm } from "../vsphere/vmops.js";
import { vncScanSpec, vncUsesIn } from "../vsphere/vnc.js";
import type { Alongside } from "../vsphere/property.js";
import { clusterOf } from "./cluster-lookup.js";
import { checkFailures, stripProvider, throwFailures, unknownInputFailures } from "./check.js";
import { topKey, withDetail, type DetailEntry } from "./detailed-diff.js";
import type { ResourceHandler } from "./handler-types.js";
import { isUnknown } from "./handler-types.js";
import { canonical } from "./image-inputs.js";
import {
  CLASS_INPUT_KEYS,
  INPUT_KEYS,
  InputsSchema,
  guestIdFailure,
  type ImageInfo,
  type ImageLike,
  type InstanceArgs,
  type Inputs,
  type NetworkArgs,
} from "./instance-inputs.js";
import { chooseDatastores } from "./image-placement.js";
import { chooseVmDatastore, diskPlan, imageInfoById } from "./instance-placement.js";
import {
  OUTPUT_KEYS,
  allocations,
  annotationOf,
  changesOf,
  clean,
  hardwareChanges,
  nicsOf,
  previewView,
  stateOf,
  type InstanceState,
  type RootDiskState,
} from "./instance-state.js";
import { dynamicProvider } from "./provider.js";

export type { InstanceArgs, NetworkArgs } from "./instance-inputs.js";
export type { InstanceState, RootDiskState } from "./instance-state.js";

const GiB = 2 ** 30;

/** Inputs whose change replaces the VM. */
const REPLACE_KEYS = ["imageId", "datastore", "clusterName", "resourcePool", "folder", "storagePolicy", "guestId", "vnc"] as const;

/**
 * A VM booted from a cached image (a linked clone of it by default).
 *
 * Replaced when the image, datastore, cluster, resource pool, folder, storage policy,
 * guestId, vnc, the image's adapter type or the linked-clone mode change. Updated in
 * place: cpus, coresPerSocket, memoryMb (with a power cycle only where hot add cannot
 * do it: the preview lists why in `powerCycle`), reservations, limits and shares,
 * rootDiskGb growth, networks (added, removed, moved, another model), metadata,
 * displayName and powerState.
 *
 * The resource id is the VM's instance uuid.
 */
export class Instance extends pulumi.dynamic.Resource {
  declare readonly instanceUuid: pulumi.Output<string>;
  declare readonly vmId: pulumi.Output<string>;
  declare readonly name: pulumi.Output<string>;
  declare readonly displayName: pulumi.Output<string>;
  declare readonly cpus: pulumi.Output<number>;
  declare readonly memoryMb: pulumi.Output<number>;
  declare readonly powerState: pulumi.Output<"on" | "off" | "suspended">;
  declare readonly datacenter: pulumi.Output<string>;
  declare readonly clusterName: pulumi.Output<string>;
  declare readonly datastore: pulumi.Output<string>;
  declare readonly vmxPath: pulumi.Output<string>;
  declare readonly host: pulumi.Output<string | undefined>;
  declare readonly vncPort: pulumi.Output<number | undefined>;
  declare readonly vncHost: pulumi.Output<string | undefined>;
  declare readonly imageId: pulumi.Output<string | undefined>;
  declare readonly linkedCloneDisk: pulumi.Output<boolean>;
  declare readonly rootDisk: pulumi.Output<RootDiskState | undefined>;
  declare readonly macAddresses: pulumi.Output<string[]>;
  declare readonly storagePolicyId: pulumi.Output<string | undefined>;
  declare readonly powerCycle: pulumi.Output<string[] | undefined>;

  constructor(name: string, args: InstanceArgs, opts?: pulumi.CustomResourceOptions) {
    // Every declared property must be in the inputs for the engine to make it an output.
    const inputs: Record<string, unknown> = { ...Object.fromEntries([...INPUT_KEYS, ...OUTPUT_KEYS].map((k) => [k, undefined])), ...args };
    if (args.image !== undefined) {
      inputs.image = imageInput(args.image);
      if (args.imageId === undefined) inputs.imageId = args.image.imageId;
    }
    // Each entry's PortGroup outputs taken directly (not through output() of the whole list),
    // so the engine learns the dependency and makes the port group first.
    const nets = args.networks;
    if (Array.isArray(nets)) inputs.networks = pulumi.all(nets.map((n: pulumi.Input<NetworkArgs>) => (pulumi.Output.isInstance(n) ? n.apply(networkInput) : networkInput(n as NetworkArgs))));
    else if (nets !== undefined) inputs.networks = pulumi.output(nets).apply((list) => pulumi.all(list.map(networkInput)));
    inputs.resourceName = name;
    inputs.resourceUrn = pulumi.createUrn(name, "pulumi-nodejs:dynamic/vmware:Instance", opts?.parent);
    super(instanceProvider, name, inputs, opts, "vmware", "Instance");
  }
}

const instanceProvider = dynamicProvider("Instance");

/** An Image's outputs as the `image` input. */
function imageInput(img: ImageLike): pulumi.Output<Record<string, unknown>> {
  return pulumi.all([img.imageId, img.kind, img.adapterType, img.osType, img.linkedClone, img.capacityBytes, img.cachePrefix, img.cached]).apply(
    ([imageId, kind, adapterType, osType, linkedClone, capacityBytes, cachePrefix, cached]) =>
      Object.fromEntries(
        Object.entries({ imageId, kind, adapterType, osType, linkedClone, capacityBytes, cachePrefix, datastores: Object.keys(cached ?? {}) }).filter(([, v]) => v !== undefined),
      ),
  );
}

type PortGroupLike = { kind: pulumi.Input<"standard" | "distributed" | undefined>; name: pulumi.Input<string>; switchUuid: pulumi.Input<string | undefined>; portgroupKey: pulumi.Input<string | undefined> };

/** A NetworkArgs (its portGroup maybe a PortGroup resource) as the plain `networks` entry. */
function networkInput(n: NetworkArgs): pulumi.Output<Record<string, unknown>> {
  const pg = n.portGroup;
  const rest = pulumi.all([n.switchUuid, n.portgroupKey, n.model, n.macAddress]);
  // A PortGroup resource (its outputs say which kind); output() of a resource would be its id.
  if (pg !== undefined && typeof pg === "object" && (pulumi.CustomResource.isInstance(pg) || (!pulumi.Output.isInstance(pg) && "name" in pg))) {
    const p = pg as PortGroupLike;
    return pulumi.all([p.kind, p.name, p.switchUuid, p.portgroupKey, rest]).apply(([kind, pgName, switchUuid, portgroupKey, [, , model, macAddress]]) =>
      clean(kind === "distributed" ? { switchUuid, portgroupKey, model, macAddress } : { portGroup: pgName, model, macAddress }),
    );
  }
  return pulumi.all([pg as pulumi.Input<string> | undefined, rest]).apply(([portGroup, [switchUuid, portgroupKey, model, macAddress]]) => clean({ portGroup, switchUuid, portgroupKey, model, macAddress }));
}


// ---------------------------------------------------------------------------
// Helpers


/** The image's properties: the `image` input (an Image's outputs), else read from its marker by id. */
async function imageOf(client: VimClient, cluster: Cluster, cfg: DriverConfig, r: Inputs): Promise<ImageInfo> {
  if (r.image) return r.image;
  if (!r.imageId) throw new Error("give image (an Image) or imageId");
  return imageInfoById(client, cluster, cfg.cachePrefix ?? "", r.imageId);
}

/**
 * The VM of a state as read: by its managed object id (one call), else — re-registered
 * under another id, or a state from an id alone — by its instance uuid.
 */
async function viewOf(
  client: VimClient,
  dc: () => Promise<Datacenter | undefined>,
  s: { vmId?: string | undefined; instanceUuid?: string | undefined },
  id: string,
): Promise<VmView | undefined> {
  if (s.vmId) {
    const view = await readVm(client, new MoRef("VirtualMachine", s.vmId));
    if (view && (s.instanceUuid === undefined || view.instanceUuid === s.instanceUuid)) return view;
  }
  const ref = await resolveVmId(client, await dc(), s.instanceUuid ?? id);
  return ref ? readVm(client, ref) : undefined;
}

/** The state's datacenter, looked up only when asked (undefined when it is gone: search them all). */
function lazyDatacenter(client: VimClient, name: string | undefined): () => Promise<Datacenter | undefined> {
  let found: Promise<Datacenter | undefined> | undefined;
  return () =>
    (found ??= name === undefined ? Promise.resolve(undefined) : getDatacenter(client, name).catch((err: unknown) => {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }));
}

// ---------------------------------------------------------------------------
// The handler

export const instanceHandler: ResourceHandler = {
  async check(ctx, olds, news) {
    const props = stripProvider(news);
    for (const k of OUTPUT_KEYS) if (props[k] === undefined || props[k] === null) delete props[k];
    for (const k of Object.keys(props)) if (props[k] === undefined || props[k] === null) delete props[k];
    const misspelt = unknownInputFailures(props, [...INPUT_KEYS, ...CLASS_INPUT_KEYS], "Instance");
    if (misspelt.length) return { inputs: props, failures: misspelt };
    const unknown = Object.keys(props).filter((k) => isUnknown(props[k]) || (k === "networks" && Array.isArray(props[k]) && (props[k] as unknown[]).some(isUnknown)));
    const known = Object.fromEntries(Object.entries(props).filter(([k]) => !unknown.includes(k)));
    const mask = Object.fromEntries(unknown.filter((k) => k in InputsSchema.shape).map((k) => [k, true])) as Partial<Record<keyof typeof InputsSchema.shape, true>>;
    const parsed = InputsSchema.omit(mask).safeParse(known);
    if (!parsed.success) return { inputs: props, failures: checkFailures(parsed.error, known, "Instance") };
    const inputs: Record<string, unknown> = { ...parsed.data };
    for (const k of unknown) inputs[k] = props[k];
    const r = inputs as unknown as Inputs;
    const cfg = ctx.config();
    const failures: pulumi.dynamic.CheckFailure[] = [];
    const given = (k: keyof Inputs) => !unknown.includes(k) && r[k] !== undefined;

    if (given("guestId")) {
      const f = guestIdFailure(r.guestId!);
      if (f) failures.push(f);
    }
    if (given("coresPerSocket") && given("cpus") && r.cpus % r.coresPerSocket! !== 0) {
      failures.push({ property: "coresPerSocket", reason: `Instance.coresPerSocket = ${r.coresPerSocket}: must divide cpus (${r.cpus})` });
    }
    if (!given("image") && !given("imageId") && !unknown.includes("image") && !unknown.includes("imageId") && !given("adopt")) {
      failures.push({ property: "image", reason: "Instance needs an image: image (an Image resource) or imageId (a cached image's id); or adopt (an existing VM)" });
    }
    if (given("image") && given("imageId") && r.image!.imageId !== r.imageId) {
      failures.push({ property: "imageId", reason: `Instance.imageId = ${JSON.stringify(r.imageId)} names another image than image (${r.image!.imageId}): give one of them` });
    }
    if (given("storagePolicy") && !cfg.pbmEnabled) {
      failures.push({ property: "storagePolicy", reason: `Instance.storagePolicy = ${JSON.stringify(r.storagePolicy)}: storage policies need vmware:pbmEnabled true` });
    }
    if (inputs.clusterName === undefined) inputs.clusterName = cfg.clusterName;
    if (inputs.clusterName === undefined) failures.push({ property: "clusterName", reason: "no cluster: set clusterName, or the vmware:clusterName config" });
    if (!given("displayName") && typeof r.resourceName === "string") inputs.displayName = r.resourceName;
    if (!cfg.integrationBridge && Array.isArray(r.networks) && !unknown.includes("networks")) {
      r.networks.forEach((n, i) => {
        if (n.portGroup === undefined && n.switchUuid === undefined && !cfg.flatNetworkBridge) {
          failures.push({ property: `networks[${i}]`, reason: "a NIC needs portGroup (a PortGroup or a port group's name), or switchUuid and portgroupKey" });
        }
      });
    }

    // olds are the last checked inputs (none for a new resource): the VM itself is not known here.
    const o = stripProvider(olds) as Partial<Inputs>;
    const isNew = Object.keys(o).length === 0;
    if (given("rootDiskGb") && typeof o.rootDiskGb === "number" && r.rootDiskGb! < o.rootDiskGb) {
      failures.push({ property: "rootDiskGb", reason: `Instance.rootDiskGb = ${r.rootDiskGb}: the root disk is ${o.rootDiskGb} GiB and cannot shrink (rebuild it smaller with pulumi up --replace)` });
    }
    if (failures.length) return { inputs, failures };
    // The root disk against the image (its capacity known from an Image's outputs, or its marker).
    if (!["image", "imageId", "clusterName", "rootDiskGb"].some((k) => unknown.includes(k)) && !given("adopt")) {
      try {
        let image = r.image;
        if (!image && r.imageId && (isNew || o.imageId !== r.imageId)) {
          const client = await ctx.client();
          const cluster = await clusterOf(ctx, client, r.clusterName);
          image = await imageInfoById(client, cluster, cfg.cachePrefix ?? "", r.imageId);
        }
        if (image) diskPlan(image, r.rootDiskGb, image.linkedClone ?? cfg.useLinkedClone);
      } catch (err) {
        const e = err as Error & { kind?: string };
        const property = err instanceof RangeError ? "rootDiskGb" : e.kind === "cluster" ? "clusterName" : "imageId";
        return { inputs, failures: [{ property, reason: e.message }] };
      }
    }
    // A resource pool, VM folder or datastore that does not exist (or does not fit) fails the
    // preview, naming what there is; looked up for a new VM or a changed name only.
    const lookups = (["resourcePool", "folder", "datastore"] as const).filter((k) => given(k) && (isNew || o[k] !== r[k]));
    if (lookups.length && !unknown.includes("clusterName")) {
      const client = await ctx.client();
      const cluster = await clusterOf(ctx, client, r.clusterName);
      const found = await Promise.all(
        lookups.map(async (k) => {
          try {
            if (k === "resourcePool") await findResourcePool(client, cluster, r.resourcePool!);
            else if (k === "folder") await findVmFolder(client, cluster.datacenter, r.folder!);
            else await chooseDatastores(client, cluster, [r.datastore!], undefined, undefined);
            return undefined;
          } catch (err) {
            if (err instanceof NotFoundError || err instanceof NoSuitableDatastoreError) return { property: k, reason: (err as Error).message };
            throw err;
          }
        }),
      );
      const missing = found.filter((f) => f !== undefined);
      if (missing.length) return { inputs, failures: missing };
    }
    // A storage policy that does not exist fails the preview, naming the ones there are.
    const policyName = cfg.pbmEnabled && !unknown.includes("storagePolicy") ? (r.storagePolicy ?? cfg.pbmDefaultPolicy) : undefined;
    if (policyName && (isNew || o.storagePolicy !== r.storagePolicy)) {
      try {
        await findPolicy(await ctx.client(), policyName);
      } catch (err) {
        if (err instanceof StoragePolicyNotFoundError) return { inputs, failures: [{ property: r.storagePolicy ? "storagePolicy" : "(vmware:pbmDefaultPolicy)", reason: err.message }] };
        throw err;
      }
    }
    // What the preview must say: which changes need the VM powered off for a while, as the
    // update's own planner (vm-update.ts) decides it for a VM as the last inputs made it.
    // (The update decides again on the VM as it is then.)
    const hardware = ["cpus", "memoryMb", "coresPerSocket", "cpuHotAdd", "memoryHotAdd", "rootDiskGb", "powerState"] as const;
    const touched = hardware.some((k) => canonical(r[k] ?? null) !== canonical(o[k] ?? null));
    if (!isNew && touched && !hardware.some((k) => unknown.includes(k)) && typeof o.cpus === "number" && typeof o.memoryMb === "number") {
      try {
        const plan = planUpdate(previewView(o as Inputs, cfg), hardwareChanges(r));
        if (plan.powerCycle.length) inputs.powerCycle = plan.powerCycle;
      } catch (err) {
        if (err instanceof VmUpdateError) return { inputs, failures: [{ property: err.field === "rootDiskKb" ? "rootDiskGb" : err.field, reason: err.message }] };
        throw err;
      }
    }
    return { inputs };
  },

  async diff(ctx, _id, olds, news) {
    const o = stripProvider(olds) as unknown as InstanceState;
    const n = stripProvider(news) as unknown as Inputs & { powerCycle?: string[] };
    const cfg = ctx.config();
    const entries: DetailEntry[] = [];
    const unk = (k: string) => isUnknown((n as Record<string, unknown>)[k]);
    const differs = (a: unknown, b: unknown) => canonical(a ?? null) !== canonical(b ?? null);

    // Replacements.
    for (const k of REPLACE_KEYS) {
      if (unk(k)) continue;
      const now = (n as Record<string, unknown>)[k];
      const was = (o as unknown as Record<string, unknown>)[k];
      if (k === "datastore" && now === undefined) continue; // chosen by create: not an input change
      if (k === "clusterName" && now === undefined) continue;
      if (differs(now, was)) entries.push({ path: k, kind: was === undefined ? "ADD_REPLACE" : now === undefined ? "DELETE_REPLACE" : "UPDATE_REPLACE" });
    }
    if (!unk("image") && n.image && o.imageKind === "disk" && !o.adopt) {
      if (n.image.adapterType !== undefined && o.adapterType !== undefined && n.image.adapterType !== o.adapterType) entries.push({ path: "image.adapterType", kind: "UPDATE_REPLACE" });
      if (n.image.linkedClone !== undefined && o.linkedClone !== undefined && n.image.linkedClone !== o.linkedClone) entries.push({ path: "image.linkedClone", kind: "UPDATE_REPLACE" });
    }

    // In place.
    const update = (path: string, now: unknown, was: unknown) => {
      if (differs(now, was)) entries.push({ path, kind: was === undefined ? "ADD" : now === undefined ? "DELETE" : "UPDATE" });
    };
    const simple = ["cpus", "memoryMb", "powerState", "displayName"] as const;
    for (const k of simple) if (!unk(k)) update(k, n[k], o[k]);
    if (!unk("coresPerSocket")) update("coresPerSocket", n.coresPerSocket ?? 1, o.coresPerSocket ?? 1);
    for (const k of ["cpuHotAdd", "memoryHotAdd"] as const) if (!unk(k)) update(k, n[k] ?? false, o[k] ?? false);
    for (const k of ["cpuReservationMhz", "cpuLimitMhz", "cpuShares", "memoryReservationMb", "memoryLimitMb", "memoryShares"] as const) {
      if (!unk(k) && n[k] !== undefined) update(k, n[k], o[k]);
    }
    if (!unk("rootDiskGb") && n.rootDiskGb !== undefined) {
      const have = o.rootDiskGb ?? Math.ceil((o.rootDisk?.capacityBytes ?? 0) / GiB);
      if (n.rootDiskGb > have) entries.push({ path: "rootDiskGb", kind: o.rootDiskGb === undefined ? "ADD" : "UPDATE" });
    }
    if (!unk("metadata")) update("metadata", n.metadata ?? {}, o.metadata ?? {});
    if (!unk("networks")) {
      const now = n.networks ?? [];
      const was = o.networks ?? [];
      for (let i = 0; i < Math.max(now.length, was.length); i++) {
        const a = now[i];
        const b = was[i];
        if (a === undefined) entries.push({ path: `networks[${i}]`, kind: "DELETE" });
        else if (b === undefined) entries.push({ path: `networks[${i}]`, kind: "ADD" });
        else {
          const want = nicsOf([a], cfg)[0]!;
          const wantKey = want.backing.kind === "standard" ? { portGroup: want.backing.networkName } : { switchUuid: want.backing.switchUuid, portgroupKey: want.backing.portgroupKey };
          const haveKey = b.switchUuid !== undefined ? { switchUuid: b.switchUuid, portgroupKey: b.portgroupKey } : { portGroup: b.portGroup };
          if (differs(wantKey, haveKey)) entries.push({ path: `networks[${i}].portGroup`, kind: "UPDATE" });
          if ((a.model ?? "vmxnet3") !== (b.model ?? "vmxnet3")) entries.push({ path: `networks[${i}].model`, kind: "UPDATE" });
          if (a.macAddress !== undefined && a.macAddress !== b.macAddress) entries.push({ path: `networks[${i}].macAddress`, kind: "UPDATE" });
        }
      }
    }
    if (n.powerCycle?.length && entries.some((e) => !e.kind.endsWith("REPLACE"))) entries.push({ path: "powerCycle", kind: o.powerCycle ? "UPDATE" : "ADD" });
    const unknowns = [...INPUT_KEYS].some((k) => unk(k));
    if (entries.length === 0) return unknowns ? { replaces: [] } : { changes: false, replaces: [] };
    const replaces = [...new Set(entries.filter((e) => e.kind.endsWith("_REPLACE")).map((e) => topKey(e.path)))];
    return withDetail({ changes: true, replaces, deleteBeforeReplace: false }, entries);
  },

  async create(ctx, inputs) {
    const r = stripProvider(inputs) as unknown as Inputs;
    const cfg = ctx.config();
    const client = await ctx.client();
    const cluster = await clusterOf(ctx, client, r.clusterName);
    const dc = cluster.datacenter;
    if (r.guestId) throwFailures([guestIdFailure(r.guestId)].filter((f) => f !== undefined));
    const displayName = r.displayName ?? r.resourceName ?? "instance";
    const base = { datacenter: dc.name, clusterName: cluster.name, cachePrefix: cfg.cachePrefix ?? "" };

    if (r.adopt) return adopt(client, cluster, cfg, r, displayName, base);

    const image = await imageOf(client, cluster, cfg, r);
    const linked = image.kind === "disk" && (image.linkedClone ?? cfg.useLinkedClone);
    const plan = diskPlan(image, r.rootDiskGb, linked);
    const cachePrefix = image.cachePrefix ?? base.cachePrefix;
    const [pool, folder] = await Promise.all([
      r.resourcePool ? findResourcePool(client, cluster, r.resourcePool) : undefined,
      r.folder ? findVmFolder(client, dc, r.folder) : undefined,
    ]);
    // With SPBM, the policy's compatible datastores replace the regex, as in Nova.
    const policyName = cfg.pbmEnabled ? (r.storagePolicy ?? cfg.pbmDefaultPolicy) : undefined;
    const policy = policyName ? await findPolicy(client, policyName) : undefined;
    const allowed = policy ? (await getDatastores(client, await compatibleDatastores(client, policy.id, cluster.datastores))).map((d) => d.name) : undefined;
    if (policy && r.datastore && !allowed!.includes(r.datastore)) {
      throw new NotFoundError(`datastore ${r.datastore} is not compatible with storage policy "${policy.name}" (compatible: ${allowed!.join(", ") || "none"})`, "datastore", r.datastore);
    }
    // Every VM's VNC port is read in the same round trip as the datastores (the port is
    // picked from it before the create, and checked again with the create's end).
    const vncRead: Alongside | undefined = r.vnc !== false ? { specs: [vncScanSpec(client)] } : undefined;
    const datastore = await chooseVmDatastore(client, cluster, { named: r.datastore, regex: cfg.datastoreRegex, requiredBytes: plan.requiredBytes, image, cachePrefix, allowed, alongside: vncRead });
    const instanceUuid = randomUUID();
    const name = instanceUuid;
    const cachedOn = image.datastores.includes(datastore) ? datastore : (image.datastores[0] ?? datastore);

    // Used again: the image's age markers go before anything links to it, the creator's half
    // of the cache sweeper's protocol (cache-sweep.ts: it re-checks a marker before a delete).
    await clearAgeMarkers(client, dc, cacheLocation(datastore, cachePrefix, image.imageId, image.kind).folder);

    // The root disk: an ISO's blank disk beside the ISO, or the image's (root-disk.ts).
    let cdromIso: DatastorePath | undefined;
    if (image.kind === "iso" && cachedOn !== datastore) {
      await copyToDatastore(client, { datacenter: dc, fromDatastore: cachedOn, datastore, cachePrefix, imageId: image.imageId, kind: "iso" });
    }
    if (image.kind === "iso") cdromIso = cacheLocation(datastore, cachePrefix, image.imageId, "iso").disk;
    const prepare = async (): Promise<{ rootDisk: RootDiskOptions; base: DatastorePath | undefined; undo(): Promise<void>; done(): void }> => {
      if (image.kind === "iso") return { rootDisk: { kind: "blank", capacityKb: plan.rootGb! * 1024 * 1024 }, base: undefined, undo: async () => {}, done: () => {} };
      const prepared = await prepareRootDisk(client, {
        datacenter: dc,
        datastore,
        cachedOn,
        cachePrefix,
        imageId: image.imageId,
        capacityBytes: image.capacityBytes ?? 0,
        ...(plan.rootGb !== undefined ? { rootGb: plan.rootGb } : {}),
        linkedClone: linked,
        vmName: name,
      });
      return { rootDisk: prepared.disk, base: prepared.base, undo: prepared.undo, done: prepared.done };
    };
    const alloc = allocations(r);
    const specOf = (rootDisk: RootDiskOptions): Omit<VmSpecOptions, "vnc"> => ({
      name,
      datastore,
      guestId: r.guestId ?? image.osType,
      numCpus: r.cpus,
      ...(r.coresPerSocket !== undefined ? { coresPerSocket: r.coresPerSocket } : {}),
      memoryMb: r.memoryMb,
      ...(r.cpuHotAdd !== undefined ? { cpuHotAdd: r.cpuHotAdd } : {}),
      ...(r.memoryHotAdd !== undefined ? { memoryHotAdd: r.memoryHotAdd } : {}),
      ...alloc,
      instanceUuid,
      annotation: annotationOf(displayName, r.resourceUrn),
      adapterType: image.kind === "iso" ? "lsiLogic" : (image.adapterType ?? "lsiLogic"),
      rootDisk,
      ...(cdromIso ? { cdromIso } : {}),
      nics: nicsOf(r.networks, cfg),
      ...(cfg.serialPortServiceUri ? { serialPort: { serviceUri: cfg.serialPortServiceUri, ...(cfg.serialPortProxyUri ? { proxyUri: cfg.serialPortProxyUri } : {}) } } : {}),
      ...(cfg.consoleDelaySeconds !== undefined ? { consoleDelaySeconds: cfg.consoleDelaySeconds } : {}),
      ...(r.metadata ? { metadata: r.metadata } : {}),
      // Nova's: the instance uuid for NSX, and disk UUIDs visible to the guest.
      extraConfig: { "nvp.vm-uuid": instanceUuid, "disk.EnableUUID": "TRUE" },
      ...(policy ? { storagePolicyId: policy.id } : {}),
    });
    let spawned;
    // A second try only when the linked clone's sized base vanished under this create: another
    // process made it, its create failed and its undo removed the base before this VM linked
    // to it (holds are per process). Then the base is made again.
    for (let attempt = 0; ; attempt++) {
      const disk = await prepare();
      try {
        spawned = await spawnVm(client, {
          cluster,
          ...(pool ? { resourcePool: pool } : {}),
          ...(folder ? { folder } : {}),
          spec: specOf(disk.rootDisk),
          vnc: r.vnc,
          // The ports read with the datastores, on the first try; a retry reads them afresh.
          ...(attempt === 0 && vncRead?.reads ? { vncUses: vncUsesIn(vncRead.reads) } : {}),
          powerOn: r.powerState !== "off",
          ...(r.powerState === "suspended" ? { suspend: true } : {}),
        });
        break;
      } catch (err) {
        // Asked before the undo, which may remove the base itself.
        const lostBase = attempt === 0 && linked && disk.base !== undefined && plan.rootGb !== undefined && !(await fileExists(client, dc, disk.base).catch(() => true));
        await disk.undo().catch((e: unknown) => client.log({ level: "warn", event: "cleanup", message: `could not undo the root disk of ${name}: ${(e as Error).message}` }));
        if (!lostBase) throw blameDevice(err, specOf(disk.rootDisk), r.networks);
        client.log({ level: "info", event: "retry", message: `sized base ${disk.base!.toString()} was removed by another create while ${name} linked to it: making it again` });
      } finally {
        disk.done();
      }
    }
    const state = stateOf(spawned.view, {
      ...r,
      ...base,
      displayName,
      imageId: image.imageId,
      imageKind: image.kind,
      adapterType: image.kind === "disk" ? (image.adapterType ?? "lsiLogic") : undefined,
      cachePrefix,
      linkedClone: linked,
      ...(policy ? { storagePolicyId: policy.id } : {}),
    } as Partial<InstanceState> & typeof base);
    return { id: instanceUuid, outs: state as unknown as Record<string, unknown> };
  },

  async read(ctx, id, props) {
    const s = stripProvider(props) as unknown as Partial<InstanceState>;
    const client = await ctx.client();
    // By the VM's id first (one call); the datacenter only for a search by instance uuid.
    const dc = lazyDatacenter(client, s.datacenter);
    const view = await viewOf(client, dc, s, id);
    if (!view) return { id: "", props: {} };
    let known: Partial<InstanceState> & Pick<InstanceState, "datacenter" | "clusterName"> = { ...s, datacenter: s.datacenter ?? "", clusterName: s.clusterName ?? "" };
    if (!s.vmId) {
      // From the id alone (an import): what inputs would describe this VM.
      const cfg = ctx.config();
      const datacenter = (await dc()) ?? (await getDatacenter(client));
      known = { datacenter: datacenter.name, clusterName: s.clusterName ?? cfg.clusterName ?? "", cachePrefix: cfg.cachePrefix ?? "", adopt: view.instanceUuid };
    }
    const state = stateOf(view, known);
    return { id: view.instanceUuid, props: state as unknown as Record<string, unknown> };
  },

  async update(ctx, id, olds, news) {
    const o = stripProvider(olds) as unknown as InstanceState;
    const n = stripProvider(news) as unknown as Inputs;
    const cfg = ctx.config();
    const client = await ctx.client();
    const dc = lazyDatacenter(client, o.datacenter);
    const view = await viewOf(client, dc, o, id);
    if (!view) throw new NotFoundError(`the VM of instance ${o.instanceUuid ?? id} is gone (refresh, then up makes it again)`, "vm", o.instanceUuid ?? id);
    const displayName = n.displayName ?? n.resourceName ?? o.displayName ?? "instance";
    const { after, powerCycle } = await reconfigure(client, dc, view, changesOf(n, cfg, displayName, Boolean(o.adopt)));
    const state = stateOf(after, { ...o, ...n, displayName, datacenter: o.datacenter, clusterName: o.clusterName } as Partial<InstanceState> & Pick<InstanceState, "datacenter" | "clusterName">);
    // What this update did: the power cycle it needed, and why (the preview said so from the inputs).
    if (powerCycle.length) state.powerCycle = powerCycle;
    return { outs: state as unknown as Record<string, unknown> };
  },

  async delete(ctx, id, props) {
    const s = stripProvider(props) as unknown as Partial<InstanceState>;
    const client = await ctx.client();
    let dc: Datacenter;
    // The VM's state (power, folder) is read in the same round trip as the datacenter.
    const byId = s.vmId ? new MoRef("VirtualMachine", s.vmId) : undefined;
    const stateRead: Alongside | undefined = byId ? { specs: [vmStateSpec(byId)] } : undefined;
    try {
      dc = await getDatacenter(client, s.datacenter, stateRead ? { alongside: stateRead } : {});
    } catch (err) {
      if (err instanceof NotFoundError) return; // the datacenter is gone, and the VM with it
      throw err;
    }
    const folder = s.vmxPath ? DatastorePath.parse(s.vmxPath).parent : undefined;
    // By its id first; a VM re-registered under another id by its instance uuid.
    if (byId && (await removeVm(client, dc, byId, { ...(folder ? { folder } : {}), ...(stateRead?.reads ? { state: { read: vmStateIn(byId, stateRead.reads) } } : {}) }))) return;
    const ref = await resolveVmId(client, dc, s.instanceUuid ?? id);
    if (ref) await removeVm(client, dc, ref, folder ? { folder } : {});
  },
};

/**
 * vCenter's InvalidDeviceSpec names a device by its index in the deviceChange only
 * ("Invalid configuration for device '3'"): say which input it is. A NIC's is most often
 * a port group the hosts do not have (a name misspelt, or not on every host).
 */
function blameDevice(err: unknown, spec: Omit<VmSpecOptions, "vnc">, networks: Inputs["networks"]): unknown {
  if (!(err instanceof VimFault) || err.code !== "InvalidDeviceSpec") return err;
  const index = Number((err.detail as { deviceIndex?: unknown }).deviceIndex);
  const role = Number.isInteger(index) ? plannedDevices(spec)[index]?.role : undefined;
  if (role === undefined) return err;
  if (role.startsWith("nic")) {
    const i = Number(role.slice(3));
    const nic = spec.nics?.[i];
    const where = nic?.backing.kind === "standard" ? `port group "${nic.backing.networkName}"` : nic?.backing.kind === "distributed" ? `distributed port group ${nic.backing.portgroupKey} of switch ${nic.backing.switchUuid}` : "its network";
    err.message = `networks[${i}]: vCenter refused the NIC on ${where}${networks?.[i] ? "" : " (vmware:flatNetworkBridge)"}: is it on every host of the cluster? (${err.message})`;
  } else {
    err.message = `the VM's ${role} (${err.message})`;
  }
  return err;
}

/** Brings the VM to `want` (vm-update.ts) and reads it back. */
async function reconfigure(client: VimClient, dc: () => Promise<Datacenter | undefined>, view: VmView, want: VmChanges): Promise<{ after: VmView; powerCycle: string[] }> {
  const plan = planUpdate(view, want);
  // The datacenter only for a linked clone's consolidation (datastore file calls).
  const done = await applyUpdate(client, plan.disk?.kind === "consolidate" ? await dc() : undefined, view, plan);
  const after = done.view ?? (await readVm(client, view.vm));
  if (!after) throw new NotFoundError(`VM ${view.vm.value} disappeared during its update`, "vm", view.instanceUuid);
  return { after, powerCycle: plan.powerCycle };
}

/** Takes over an existing VM: brings it to the inputs, keeps its disks. */
async function adopt(
  client: VimClient,
  cluster: Cluster,
  cfg: DriverConfig,
  r: Inputs,
  displayName: string,
  base: { datacenter: string; clusterName: string; cachePrefix: string },
): Promise<pulumi.dynamic.CreateResult> {
  const ref = await resolveVmId(client, cluster.datacenter, r.adopt!);
  const view = ref ? await readVm(client, ref) : undefined;
  if (!view) throw new NotFoundError(`adopt: no VM with instance uuid or id ${JSON.stringify(r.adopt)}`, "vm", r.adopt);
  const changes = changesOf(r, cfg, displayName, true);
  // An adopted VM keeps its disk: growth only when asked for.
  const { after } = await reconfigure(client, async () => cluster.datacenter, view, changes);
  const state = stateOf(after, { ...r, ...base, displayName, imageKind: undefined, adapterType: after.disks[0]?.controllerType } as Partial<InstanceState> & typeof base);
  return { id: after.instanceUuid, outs: state as unknown as Record<string, unknown> };
}
