// Image: a disk image (VMDK, OVA, ISO; qcow2, VHD(X), VDI and raw through qemu-img)
// streamed from a local file or a URL into the datastore image cache, the way Nova's
// VMware driver caches Glance images (`[ds] <cachePrefix>_base/<imageId>/<imageId>.vmdk`),
// with its properties (vmware_disktype, vmware_adaptertype, vmware_ostype,
// img_linked_clone, img_hv_type) as inputs. Instance boots from it.
import * as pulumi from "@pulumi/pulumi";
import { createHash, randomUUID } from "node:crypto";
import { resolve as resolvePath } from "node:path";
import type { VimClient } from "../vsphere/client.js";
import { parseChecksum, type Checksum } from "../vsphere/checksum.js";
import { listFolder, statFile, type DatastorePath, type FileEntry } from "../vsphere/datastore.js";
import { selectDatastore } from "../vsphere/datastore-select.js";
import { diskUsage } from "../vsphere/disk-users.js";
import { NoSuitableDatastoreError, NotFoundError, VSphereError } from "../vsphere/errors.js";
import { cacheLocation, copyToDatastore, removeCachedImage, type CachedKind } from "../vsphere/image-cache.js";
import { ChecksumMismatchError, SourceChangedError } from "../vsphere/image-errors.js";
import { describeFormat } from "../vsphere/image-format.js";
import { addHolder, holdersIn, holdersOf, removeHolder } from "../vsphere/image-holders.js";
import { publishImage } from "../vsphere/image-publish.js";
import { digestSource, inspectSource, openSource, type InspectedSource, type SourceDigests, type SourceFingerprint } from "../vsphere/image-source.js";
import { findCluster, getDatacenter, getDatastores, type Cluster, type Datacenter } from "../vsphere/inventory.js";
import type { AdapterType, DiskType } from "../vsphere/vmdk.js";
import { checkFailures, stripProvider, unknownInputFailures } from "./check.js";
import type { HandlerContext, ResourceHandler } from "./handler-types.js";
import { UNKNOWN, isUnknown } from "./handler-types.js";
import {
  COMPUTED_INPUT_KEYS,
  INPUT_KEYS,
  canonical,
  InputsSchema,
  checksumFailure,
  effectiveAdapterType,
  effectiveDiskType,
  effectiveOsType,
  osTypeFailure,
  sameFingerprint,
  typeFailures,
  urlContentId,
  type ImageArgs,
  type Resolved,
} from "./image-inputs.js";
import { dynamicProvider } from "./provider.js";

export type { ImageArgs } from "./image-inputs.js";

/** One cached copy. */
export interface ImageCopy {
  /** `[ds] <prefix>_base/<imageId>/<imageId>.vmdk` (or `.iso`): what an Instance's disk is cloned from. */
  path: string;
  folder: string;
  /** Bytes of the image's files in the folder. */
  sizeBytes: number;
}

/** What the state holds (outputs). */
export interface ImageState extends Resolved {
  imageId: string;
  /** The id the content gets by default (what imageId is without an imageId input). */
  contentImageId: string;
  /** Uploaded as a flat disk whose descriptor vCenter wrote for its adapter and disk type (a flat descriptor, a raw disk). */
  flatUpload: boolean;
  /** This resource's marker in each cache folder (image-holders.ts). */
  holder: string;
  cachePrefix: string;
  clusterName: string;
  datacenter: string;
  /** "disk", or "iso" (attached as a CD-ROM). */
  kind: CachedKind;
  /** What the source is: vmdk, vmdkDescriptor, ova, iso, qcow2, vhd, vhdx, vdi, raw. */
  format: string;
  /** e.g. "VMDK streamOptimized", "OVA", "ISO 9660". */
  formatDescription: string;
  /** The VMDK's createType (the OVA's disk's), when the source is a VMDK. */
  createType?: string;
  /** The image's disk type (declared, or read from the file): Nova's vmware_disktype. */
  diskType?: DiskType;
  /** The controller the disk is for: Nova's vmware_adaptertype. */
  adapterType?: AdapterType;
  /** The guest id: Nova's vmware_ostype. */
  osType: string;
  /** An OVA's own guest id, when it had a valid one (the default of osType, else otherGuest). */
  detectedOsType?: string;
  /** The disk type the file says (the default of diskType). */
  detectedDiskType?: DiskType;
  /** The adapter type the file says (ddb.adapterType, an OVA's controller; lsiLogic when it says none): the default of adapterType. */
  detectedAdapterType?: AdapterType;
  /** Boot instances as linked clones (this image's linkedClone, else vmware:useLinkedClone). */
  linkedClone: boolean;
  hypervisorType: "vmware";
  /** The disk's virtual size (an ISO: its size). */
  capacityBytes?: number;
  /** ddb.virtualHWVersion. */
  hardwareVersion?: number;
  /** Bytes of the source (a descriptor's extents; the whole OVA). */
  sizeBytes?: number;
  /** Of the source's bytes (an OVA: the .ova; a flat descriptor: its -flat data). */
  sha256?: string;
  md5?: string;
  /** The inputs as written (before defaults), to tell a removed input from an unchanged default. */
  declared: { diskType?: DiskType; adapterType?: AdapterType; osType?: string; linkedClone?: boolean; imageId?: string; datastores?: string[] };
  /** Cached copies by datastore name. */
  cached: Record<string, ImageCopy>;
  /** The first copy's path (the image's home datastore). */
  path: string;
  /** Datastores the image should be on but is not (found by refresh; the next up puts it back). */
  missingDatastores: string[];
}

const OUTPUT_KEYS = [
  ...COMPUTED_INPUT_KEYS,
  "contentImageId",
  "flatUpload",
  "detectedDiskType",
  "holder",
  "cachePrefix",
  "datacenter",
  "kind",
  "format",
  "formatDescription",
  "createType",
  "detectedOsType",
  "detectedAdapterType",
  "capacityBytes",
  "hardwareVersion",
  "sizeBytes",
  "sha256",
  "md5",
  "declared",
  "cached",
  "path",
  "missingDatastores",
];

/**
 * A disk image in the datastore image cache.
 *
 * Replaced (uploaded again) when the content changes (a local file's size or time
 * changed and its hash with them; a URL's checksum, ETag or Last-Modified), or when
 * imageId, diskType, the flat disk's adapterType, clusterName or `vmware:cachePrefix`
 * change. Updated in place: osType, linkedClone, checksum and
 * computeMd5 (when the content is the same), headers, datastores, retainWhileInUse,
 * a moved file of the same content, and copies found missing by refresh.
 *
 * The resource id is the imageId.
 */
export class Image extends pulumi.dynamic.Resource {
  declare readonly source: pulumi.Output<string>;
  declare readonly imageId: pulumi.Output<string>;
  declare readonly kind: pulumi.Output<CachedKind>;
  declare readonly format: pulumi.Output<string>;
  declare readonly formatDescription: pulumi.Output<string>;
  declare readonly createType: pulumi.Output<string | undefined>;
  declare readonly diskType: pulumi.Output<DiskType | undefined>;
  declare readonly adapterType: pulumi.Output<AdapterType | undefined>;
  declare readonly osType: pulumi.Output<string>;
  declare readonly linkedClone: pulumi.Output<boolean>;
  declare readonly hypervisorType: pulumi.Output<"vmware">;
  declare readonly capacityBytes: pulumi.Output<number | undefined>;
  declare readonly hardwareVersion: pulumi.Output<number | undefined>;
  declare readonly sizeBytes: pulumi.Output<number | undefined>;
  declare readonly sha256: pulumi.Output<string | undefined>;
  declare readonly md5: pulumi.Output<string | undefined>;
  declare readonly cachePrefix: pulumi.Output<string>;
  declare readonly clusterName: pulumi.Output<string>;
  declare readonly datacenter: pulumi.Output<string>;
  declare readonly cached: pulumi.Output<Record<string, ImageCopy>>;
  declare readonly path: pulumi.Output<string>;
  declare readonly missingDatastores: pulumi.Output<string[]>;

  constructor(name: string, args: ImageArgs, opts?: pulumi.CustomResourceOptions) {
    const inputs: Record<string, unknown> = { ...Object.fromEntries(OUTPUT_KEYS.map((k) => [k, undefined])), ...args };
    // A relative path means the program's folder, not wherever the engine starts the provider process.
    const local = (src: unknown) => (typeof src === "string" && src !== "" && !/^[a-z][a-z0-9+.-]*:\/\//i.test(src) ? resolvePath(src) : src);
    inputs.source = pulumi.output(args.source).apply(local);
    if (args.extents !== undefined) inputs.extents = pulumi.output(args.extents).apply((list) => list.map(local));
    // Credentials for the source stay secret in the state, whatever the program passed.
    if (args.headers !== undefined) inputs.headers = pulumi.secret(args.headers);
    super(imageProvider, name, inputs, { ...opts, additionalSecretOutputs: [...(opts?.additionalSecretOutputs ?? []), "headers"] }, "vmware", "Image");
  }
}

const imageProvider = dynamicProvider("Image");

// ---------------------------------------------------------------------------
// Helpers

const hex32 = (text: string) => createHash("sha256").update(text).digest("hex").slice(0, 32);

/**
 * The default imageId: the first 32 hex of the content's sha256 (for a URL not hashed
 * yet, of what identifies its version). A flat disk's cached copy is also shaped by its
 * adapter and disk type (CreateVirtualDisk_Task writes them), so two images of the same
 * bytes but another adapter are two copies: their ids hash those in too.
 */
function defaultImageId(sha256: string | undefined, contentId: string | undefined, fp: SourceFingerprint, shape: string | undefined): string {
  const hash = sha256 ?? (contentId?.startsWith("sha256:") ? contentId.slice(7) : undefined);
  if (hash && !shape) return hash.slice(0, 32);
  const content = hash ?? contentId ?? (fp.kind === "url" ? `url:${fp.url}|size:${fp.size ?? "?"}` : canonical(fp));
  return hex32(shape ? `${content}|${shape}` : content);
}

/** What shapes a flat upload's cached copy besides its bytes ("lsiLogic:thin"); undefined for the others. */
function flatShape(inspected: InspectedSource, r: Resolved): string | undefined {
  const flat = inspected.info.format === "vmdkDescriptor" || (inspected.info.format === "raw" && !inspected.conversion);
  if (!flat) return undefined;
  return `${vimAdapterOf(effectiveAdapterType(inspected, r.adapterType))}:${effectiveDiskType(inspected, r.diskType)}`;
}

/** The adapter a flat disk's descriptor is made for: vim25 knows ide, busLogic and lsiLogic (SAS and paravirtual take an lsiLogic disk). */
function vimAdapterOf(a: AdapterType | undefined): string | undefined {
  return a === undefined || a === "ide" || a === "busLogic" ? a : "lsiLogic";
}

/** Whether what check found identifies the content the state holds. */
function contentMatches(contentId: string | undefined, s: Partial<ImageState>): boolean {
  if (contentId === undefined) return false;
  if (contentId.startsWith("sha256:") && s.sha256) return contentId.slice(7) === s.sha256;
  if (contentId.startsWith("md5:") && s.md5) return contentId.slice(4) === s.md5;
  return contentId === s.contentId;
}

function checksumOf(r: { checksum?: string | undefined }): Checksum | undefined {
  if (!r.checksum) return undefined;
  const parsed = parseChecksum(r.checksum);
  if ("error" in parsed) throw new TypeError(parsed.error);
  return parsed.checksum;
}

function algorithmsFor(r: { computeMd5?: boolean; checksum?: string | undefined }): Array<"sha256" | "md5"> {
  return r.computeMd5 || checksumOf(r)?.algorithm === "md5" ? ["sha256", "md5"] : ["sha256"];
}

function specOf(r: { source: string; headers?: Record<string, string> | undefined; extents?: string[] | undefined }) {
  return { source: r.source, ...(r.headers ? { headers: r.headers } : {}), ...(r.extents ? { extents: r.extents } : {}) };
}

/** Throws a check's failures as one error (create and update re-check what check could not, e.g. unknown inputs). */
function throwFailures(failures: pulumi.dynamic.CheckFailure[]): void {
  if (failures.length) throw new Error(failures.map((f) => `${f.property}: ${f.reason}`).join("; "));
}

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * The datastores to cache on: the ones named (each checked as Nova's selection checks a
 * candidate: type, accessible, not in maintenance, on every host, room for the image), or
 * one chosen as Nova does — but a fitting datastore that has the image cached already
 * wins over the one with the most free space, so stacks sharing a cache share the copy.
 */
async function chooseDatastores(
  client: VimClient,
  cluster: Cluster,
  named: string[] | undefined,
  regex: string | undefined,
  requiredBytes: number | undefined,
  cachedAlready?: (ds: string) => Promise<boolean>,
): Promise<string[]> {
  if (named) {
    for (const name of named) await selectDatastore(client, cluster, { datastoreRegex: `${escapeRegex(name)}$`, requiredBytes });
    return [...new Set(named)];
  }
  const { datastore, candidates } = await selectDatastore(client, cluster, { datastoreRegex: regex, requiredBytes });
  if (cachedAlready && candidates.length > 1) {
    const hits = await Promise.all(candidates.map((d) => cachedAlready(d.name)));
    const hit = candidates.find((_, i) => hits[i]);
    if (hit) return [hit.name];
  }
  return [datastore.name];
}

/** Copies present in each folder: the files, whose sizes make the copy's size (holder markers not counted). */
async function readCopies(client: VimClient, dc: Datacenter, datastores: string[], cachePrefix: string, imageId: string, kind: CachedKind): Promise<{ cached: Record<string, ImageCopy>; missing: string[] }> {
  const cached: Record<string, ImageCopy> = {};
  const missing: string[] = [];
  await Promise.all(
    datastores.map(async (ds) => {
      const loc = cacheLocation(ds, cachePrefix, imageId, kind);
      let files: FileEntry[];
      try {
        files = await listFolder(client, dc, loc.folder, { details: true });
      } catch (err) {
        if ((err as VSphereError).code !== "FileNotFound") throw err;
        files = [];
      }
      if (!files.some((f) => f.name === loc.disk.basename)) {
        missing.push(ds);
        return;
      }
      const sizeBytes = files.filter((f) => !f.folder && !f.name.startsWith("holder-")).reduce((n, f) => n + (f.size ?? 0), 0);
      cached[ds] = { path: loc.disk.toString(), folder: loc.folder.toString(), sizeBytes };
    }),
  );
  return { cached: Object.fromEntries(datastores.filter((d) => cached[d]).map((d) => [d, cached[d]!])), missing: datastores.filter((d) => missing.includes(d)) };
}

interface Placed {
  /** Datastores the image was put on by this call (not there before): removed again if the caller fails. */
  published: string[];
  sha256?: string;
  md5?: string;
  bytes?: number;
}

/**
 * Puts the image on every datastore in `wanted`: copied server-side from one that has it,
 * else uploaded once from the source to the first and copied from there.
 */
async function place(
  client: VimClient,
  opts: {
    cluster: Cluster;
    cachePrefix: string;
    imageId: string;
    kind: CachedKind;
    wanted: string[];
    inspected: () => Promise<InspectedSource>;
    r: Resolved;
    /** The content's sha256 when known (a file hashed before, or the state's): the upload must match it. */
    sha256: string | undefined;
  },
): Promise<Placed> {
  const { cluster, cachePrefix, imageId, kind, wanted } = opts;
  const dc = cluster.datacenter;
  const loc = (ds: string) => cacheLocation(ds, cachePrefix, imageId, kind);
  const hits = await Promise.all(wanted.map(async (ds) => (await statFile(client, dc, loc(ds).disk, { details: false })) !== undefined));
  const out: Placed = { published: [] };
  try {
    let from = wanted.find((_, i) => hits[i]);
    if (from === undefined) {
      from = wanted[0]!;
      const { mine, ...digests } = await upload(client, { ...opts, datastore: from });
      Object.assign(out, digests);
      if (mine) out.published.push(from);
    }
    const source = from;
    await Promise.all(
      wanted
        .filter((ds, i) => ds !== source && !hits[i])
        .map(async (ds) => {
          const copied = await copyToDatastore(client, { datacenter: dc, fromDatastore: source, datastore: ds, cachePrefix, imageId, kind });
          if (!copied.alreadyCached) out.published.push(ds);
        }),
    );
    return out;
  } catch (err) {
    // Whatever this call put in the cache goes again (a copy to a second datastore failed, or an OVA's checksum).
    await rollback(client, dc, out.published, cachePrefix, imageId, kind);
    throw err;
  }
}

/**
 * Uploads the image from its source to one datastore. Resolves the source's digests and
 * `mine`, or `mine: false` when another writer's copy was there first (nothing was read).
 */
async function upload(
  client: VimClient,
  opts: { cluster: Cluster; cachePrefix: string; imageId: string; kind: CachedKind; datastore: string; inspected: () => Promise<InspectedSource>; r: Resolved; sha256: string | undefined },
): Promise<Omit<Placed, "published"> & { mine: boolean }> {
  const { cluster, cachePrefix, imageId, kind } = opts;
  const dc = cluster.datacenter;
  const inspected = await opts.inspected();
  const algorithms = algorithmsFor(opts.r);
  const expected = checksumOf(opts.r);
  const direct = !inspected.conversion && inspected.info.format !== "ova";
  const opened = await openSource(inspected, {
    // Sent as they are: the upload hashes them, once.
    algorithms: direct ? [] : algorithms,
    ...(opts.r.adapterType ? { adapterType: opts.r.adapterType } : {}),
    ...(opts.r.diskType === "thin" || opts.r.diskType === "preallocated" ? { diskType: opts.r.diskType } : {}),
  });
  // How the source's digests are checked against the declared checksum (and a file's earlier hash):
  //  - bytes sent as they are (VMDK, descriptor extents, ISO, raw): by publishImage, on what it sent, before the move into the cache;
  //  - converted: the source was read whole before conversion, so before anything is sent;
  //  - OVA: only once the tar has been read to its end, after the disk went: a mismatch takes the copy back out (place's rollback).
  const check = (d: SourceDigests) => {
    if (expected && d[expected.algorithm] !== expected.hex) throw new ChecksumMismatchError(inspected.name, expected.algorithm, expected.hex, d[expected.algorithm] ?? "(not computed)");
    if (opts.sha256 && d.sha256 !== opts.sha256) throw new SourceChangedError(inspected.name, [`sha256 ${opts.sha256} → ${d.sha256}`]);
  };
  try {
    if (inspected.conversion) check(await opened.digests);
    const result = await publishImage(client, {
      datacenter: dc,
      datastore: opts.datastore,
      cachePrefix,
      imageId,
      source: opened.publish,
      // A file hashed just before (and checked unchanged by openSource) is not hashed again on the way.
      ...(direct && opts.sha256 ? { hash: false, checksums: [] } : { checksums: algorithms, ...(direct && expected ? { expected } : {}) }),
      knownAbsent: true,
      resourcePool: cluster.resourcePool,
      vmFolder: dc.vmFolder,
    });
    if (result.alreadyCached) return { mine: false };
    const d = direct ? { sha256: result.sha256 ?? opts.sha256!, bytes: result.bytes, ...(result.md5 ? { md5: result.md5 } : {}) } : await opened.digests;
    try {
      check(d);
    } catch (err) {
      // Published, then found wrong: take it back out here, where it is known to be ours.
      await rollback(client, dc, [opts.datastore], cachePrefix, imageId, kind);
      throw err;
    }
    return { mine: true, ...(d.sha256 ? { sha256: d.sha256 } : {}), bytes: d.bytes, ...(d.md5 ? { md5: d.md5 } : {}) };
  } finally {
    await opened.dispose();
  }
}

/** Takes back copies this run published when it fails later (unless someone else holds them meanwhile). */
async function rollback(client: VimClient, dc: Datacenter, published: string[], cachePrefix: string, imageId: string, kind: CachedKind): Promise<void> {
  await Promise.all(
    published.map(async (ds) => {
      try {
        if ((await holdersOf(client, dc, cacheLocation(ds, cachePrefix, imageId, kind).folder)).length === 0) await removeCachedImage(client, dc, ds, cachePrefix, imageId);
      } catch (err) {
        client.log({ level: "warn", event: "cleanup", message: `could not remove image ${imageId} from ${ds} after a failure: ${(err as Error).message}` });
      }
    }),
  );
}

// The cluster as check read it, kept for the create or update that follows in the same
// process (one traversal fewer); per client, so a new session reads it again.
const clusters = new WeakMap<VimClient, Map<string, Promise<Cluster>>>();

async function clusterOf(ctx: HandlerContext, client: VimClient, name: string | undefined, datacenter?: string): Promise<Cluster> {
  const clusterName = name ?? ctx.config().clusterName;
  if (!clusterName) throw new NotFoundError("no cluster: set clusterName, or the vmware:clusterName config", "cluster");
  let perClient = clusters.get(client);
  if (!perClient) clusters.set(client, (perClient = new Map()));
  const key = JSON.stringify([clusterName, datacenter ?? null]);
  let found = perClient.get(key);
  if (!found) {
    const map = perClient;
    found = findCluster(client, clusterName, datacenter);
    map.set(key, found);
    found.catch(() => map.delete(key));
  }
  return found;
}

/** The error of a failed inspection, as the check failure of the input to fix. */
function inspectFailure(err: unknown): pulumi.dynamic.CheckFailure {
  const e = err as { code?: string; status?: number; message?: string };
  const property = e.code === "SourceFetchFailed" && (e.status === 401 || e.status === 403) ? "headers" : "source";
  return { property, reason: e.message ?? String(err) };
}

/** A cache folder's files, or undefined when the folder is gone. */
async function filesIn(client: VimClient, dc: Datacenter, folder: DatastorePath): Promise<FileEntry[] | undefined> {
  try {
    return (await listFolder(client, dc, folder)).filter((f) => !f.folder);
  } catch (err) {
    if ((err as VSphereError).code === "FileNotFound") return undefined;
    throw err;
  }
}

/** The VMs (and VMs whose disks cannot be read) using any disk in each folder, by datastore. */
async function usersOf(client: VimClient, folders: Array<{ ds: string; files: FileEntry[] }>): Promise<Map<string, string[]>> {
  const disks = new Map<string, string>();
  for (const { ds, files } of folders) for (const f of files) if (f.name.endsWith(".vmdk")) disks.set(f.path.toString(), ds);
  const out = new Map<string, string[]>();
  if (disks.size === 0) return out;
  const usage = await diskUsage(client, [...disks.keys()]);
  for (const [path, users] of usage.users) {
    if (users.length === 0) continue;
    const ds = disks.get(path)!;
    out.set(ds, [...new Set([...(out.get(ds) ?? []), ...users.map((u) => u.name)])]);
  }
  if (usage.unreadable.length) {
    // A VM whose disks cannot be read may use any of them: keep every copy.
    const names = usage.unreadable.map((u) => `${u.name} (disks unreadable)`);
    for (const { ds } of folders) out.set(ds, [...new Set([...(out.get(ds) ?? []), ...names])]);
  }
  return out;
}

const warn = (message: string) => process.stderr.write(`warning: ${message}\n`);

// ---------------------------------------------------------------------------
// The handler

export const imageHandler: ResourceHandler = {
  async check(ctx, olds, news) {
    const props = stripProvider(news);
    for (const k of OUTPUT_KEYS) if (props[k] === undefined || props[k] === null) delete props[k];
    const misspelt = unknownInputFailures(props, INPUT_KEYS, "Image");
    if (misspelt.length) return { inputs: props, failures: misspelt };
    const unknown = Object.keys(props).filter((k) => isUnknown(props[k]));
    const known = Object.fromEntries(Object.entries(props).filter(([k]) => !unknown.includes(k)));
    // Unknown inputs (outputs of resources not made yet, at preview) are not validated yet, nor required.
    const mask = Object.fromEntries(unknown.filter((k) => k in InputsSchema.shape).map((k) => [k, true])) as Partial<Record<keyof typeof InputsSchema.shape, true>>;
    const parsed = InputsSchema.omit(mask).safeParse(known);
    if (!parsed.success) return { inputs: props, failures: checkFailures(parsed.error, known, "Image") };
    const inputs: Record<string, unknown> = { ...parsed.data };
    for (const k of unknown) inputs[k] = UNKNOWN;
    const r = inputs as unknown as Resolved;

    const failures: pulumi.dynamic.CheckFailure[] = [];
    if (typeof r.osType === "string" && !isUnknown(r.osType)) {
      const f = osTypeFailure(r.osType);
      if (f) failures.push(f);
    }
    if (typeof r.checksum === "string" && !isUnknown(r.checksum)) {
      const f = checksumFailure(r.checksum);
      if (f) failures.push(f);
    }
    const cfg = ctx.config();
    if (inputs.clusterName === undefined) inputs.clusterName = cfg.clusterName;
    if (inputs.clusterName === undefined) failures.push({ property: "clusterName", reason: "no cluster: set clusterName, or the vmware:clusterName config" });
    if (failures.length) return { inputs, failures };
    if ([r.source, r.headers, r.checksum, r.extents].some(isUnknown) || (Array.isArray(r.extents) && r.extents.some(isUnknown))) return { inputs };

    let inspected: InspectedSource;
    try {
      inspected = await inspectSource(specOf(r));
    } catch (err) {
      return { inputs, failures: [inspectFailure(err)] };
    }
    const declared = { ...(isUnknown(r.diskType) ? {} : { diskType: r.diskType }), ...(isUnknown(r.adapterType) ? {} : { adapterType: r.adapterType }) };
    const mismatched = typeFailures(inspected, declared);
    if (mismatched.length) return { inputs, failures: mismatched };

    // What the content is, to tell a changed image from a touched or moved file.
    const fp = inspected.fingerprint;
    const o = stripProvider(olds) as Partial<Resolved>;
    let contentId: string | undefined;
    if (sameFingerprint(o.sourceFingerprint, fp)) contentId = o.contentId;
    else if (fp.kind === "url") contentId = urlContentId(fp, r.checksum);
    else if (o.source !== undefined) contentId = `sha256:${(await digestSource(inspected, ["sha256"])).sha256}`;
    else if (r.checksum) contentId = r.checksum.toLowerCase();
    inputs.sourceFingerprint = fp;
    if (contentId !== undefined) inputs.contentId = contentId;

    // Where it would go, now: a datastore named that is unfit, or none that fits. Only for
    // an image to be placed (new, new content, other datastores or cluster): one cached
    // already needs no room, and a full datastore must not fail every later preview.
    const placing =
      o.source === undefined ||
      !sameFingerprint(o.sourceFingerprint, fp) ||
      canonical(o.datastores ?? null) !== canonical(r.datastores ?? null) ||
      o.clusterName !== r.clusterName;
    if (placing && !isUnknown(r.clusterName) && !isUnknown(r.datastores) && !(Array.isArray(r.datastores) && r.datastores.some(isUnknown))) {
      try {
        const client = await ctx.client();
        const cluster = await clusterOf(ctx, client, r.clusterName);
        await chooseDatastores(client, cluster, r.datastores, cfg.datastoreRegex, inspected.capacityBytes ?? inspected.sizeBytes);
      } catch (err) {
        if (err instanceof NoSuitableDatastoreError) return { inputs, failures: [{ property: r.datastores ? "datastores" : "source", reason: err.message }] };
        if (err instanceof NotFoundError) return { inputs, failures: [{ property: "clusterName", reason: err.message }] };
        throw err;
      }
    }
    return { inputs };
  },

  async diff(ctx, _id, olds, news) {
    const o = stripProvider(olds) as unknown as ImageState;
    const n = stripProvider(news) as unknown as Resolved;
    const cfg = ctx.config();
    const unknowns = INPUT_KEYS.filter((k) => isUnknown((n as unknown as Record<string, unknown>)[k]));
    const replaces: string[] = [];
    if (!isUnknown(n.source) && !sameFingerprint(n.sourceFingerprint, o.sourceFingerprint) && !contentMatches(n.contentId, o)) replaces.push("source");
    const declaredSum = !isUnknown(n.checksum) ? checksumOf(n) : undefined;
    if (declaredSum && !replaces.includes("source")) {
      const have = declaredSum.algorithm === "sha256" ? o.sha256 : o.md5;
      if (have !== undefined && have !== declaredSum.hex) replaces.push("checksum");
    }
    // Without an imageId input the id is the content's own.
    if (!isUnknown(n.imageId) && (n.imageId ?? o.contentImageId ?? o.imageId) !== o.imageId) replaces.push("imageId");
    // A flat upload's cached copy is made for its disk type and adapter (CreateVirtualDisk_Task writes them);
    // for the others the adapter only tells Instance which controller to use, and the disk type is the file's.
    if (!isUnknown(n.diskType) && o.kind === "disk" && (n.diskType ?? o.detectedDiskType ?? o.diskType) !== o.diskType) replaces.push("diskType");
    const nextAdapter = isUnknown(n.adapterType) ? o.adapterType : (n.adapterType ?? o.detectedAdapterType ?? o.adapterType);
    const adapterChanged = o.kind === "disk" && nextAdapter !== o.adapterType;
    if (adapterChanged && o.flatUpload && vimAdapterOf(nextAdapter) !== vimAdapterOf(o.adapterType)) replaces.push("adapterType");
    if (!isUnknown(n.clusterName) && n.clusterName !== undefined && n.clusterName !== o.clusterName) replaces.push("clusterName");
    if ((cfg.cachePrefix ?? "") !== (o.cachePrefix ?? "")) replaces.push("cachePrefix");
    if (replaces.length) return { changes: true, replaces, deleteBeforeReplace: false };

    const given = (k: "osType" | "linkedClone") => (isUnknown(n[k]) ? undefined : n[k]);
    const update =
      adapterChanged ||
      (!isUnknown(n.osType) && (given("osType") ?? o.detectedOsType ?? "otherGuest") !== o.osType) ||
      (!isUnknown(n.linkedClone) && (given("linkedClone") ?? cfg.useLinkedClone) !== o.linkedClone) ||
      (!isUnknown(n.computeMd5) && n.computeMd5 === true && o.md5 === undefined) ||
      (!isUnknown(n.datastores) && canonical(n.datastores ?? null) !== canonical(o.declared?.datastores ?? null)) ||
      (!isUnknown(n.retainWhileInUse) && (n.retainWhileInUse ?? false) !== (o.retainWhileInUse ?? false)) ||
      (!isUnknown(n.checksum) && (n.checksum ?? undefined) !== (o.checksum ?? undefined)) ||
      (!isUnknown(n.headers) && canonical(n.headers ?? null) !== canonical(o.headers ?? null)) ||
      (!isUnknown(n.source) && n.source !== o.source) ||
      (o.missingDatastores?.length ?? 0) > 0;
    if (unknowns.length && !update) return { replaces: [] };
    return { changes: update, replaces: [] };
  },

  async create(ctx, inputs) {
    const r = stripProvider(inputs) as unknown as Resolved;
    const cfg = ctx.config();
    const client = await ctx.client();
    const cluster = await clusterOf(ctx, client, r.clusterName);
    const inspected = await inspectSource(specOf(r));
    throwFailures(typeFailures(inspected, r));
    if (r.osType) throwFailures([osTypeFailure(r.osType)].filter((f) => f !== undefined));
    const expected = checksumOf(r);
    const fp = inspected.fingerprint;

    // A file whose id comes from its content is hashed first, so a copy cached already is
    // not uploaded again. With an imageId input or a sha256 checksum the id is known
    // without it: the file is read once, hashed on the way, and the upload verifies the
    // checksum before anything is published.
    let sha256 = r.contentId?.startsWith("sha256:") && !expected ? r.contentId.slice(7) : undefined;
    if (expected?.algorithm === "sha256") sha256 ??= expected.hex;
    let md5: string | undefined;
    let hashedBefore: string | undefined;
    if (fp.kind === "file" && sha256 === undefined && r.imageId === undefined) {
      const d = await digestSource(inspected, algorithmsFor(r));
      if (expected && d[expected.algorithm] !== expected.hex) throw new ChecksumMismatchError(inspected.name, expected.algorithm, expected.hex, d[expected.algorithm] ?? "(not computed)");
      sha256 = hashedBefore = d.sha256;
      md5 = d.md5;
    }
    const known = sha256;
    let contentImageId = r.imageId === undefined ? defaultImageId(known, r.contentId, fp, flatShape(inspected, r)) : undefined;
    const imageId = r.imageId ?? contentImageId!;
    const kind: CachedKind = inspected.info.format === "iso" ? "iso" : "disk";
    const cachePrefix = cfg.cachePrefix ?? "";
    const cachedOn = async (ds: string) => (await statFile(client, cluster.datacenter, cacheLocation(ds, cachePrefix, imageId, kind).disk, { details: false })) !== undefined;
    const wanted = await chooseDatastores(client, cluster, r.datastores, cfg.datastoreRegex, inspected.capacityBytes ?? inspected.sizeBytes, cachedOn);
    const holder = randomUUID();

    let placed: Placed = { published: [] };
    try {
      placed = await place(client, {
        cluster,
        cachePrefix,
        imageId,
        kind,
        wanted,
        r,
        sha256: hashedBefore,
        inspected: async () => inspected,
      });
      await Promise.all(wanted.map((ds) => addHolder(client, cluster.datacenter, cacheLocation(ds, cachePrefix, imageId, kind).folder, holder, { imageId })));
      const { cached, missing } = await readCopies(client, cluster.datacenter, wanted, cachePrefix, imageId, kind);
      if (missing.length) throw new Error(`image ${imageId} is not in the cache of ${missing.join(", ")} after it was put there (deleted meanwhile?)`);
      sha256 = placed.sha256 ?? sha256;
      md5 ??= placed.md5;
      // With an imageId input: the id the content would have had (a file's from the sha256 read on the way).
      contentImageId ??= defaultImageId(fp.kind === "file" ? sha256 : known, r.contentId, fp, flatShape(inspected, r));
      const outs = stateOf(r, inspected, {
        imageId,
        contentImageId,
        holder,
        cachePrefix,
        cluster,
        kind,
        cfg,
        sha256,
        md5,
        cached,
        wanted,
        contentId: r.contentId ?? (sha256 ? `sha256:${sha256}` : undefined),
      });
      return { id: imageId, outs: outs as unknown as Record<string, unknown> };
    } catch (err) {
      await Promise.all(wanted.map((ds) => removeHolder(client, cluster.datacenter, cacheLocation(ds, cachePrefix, imageId, kind).folder, holder).catch(() => false)));
      await rollback(client, cluster.datacenter, placed.published, cachePrefix, imageId, kind);
      throw err;
    }
  },

  async read(ctx, id, props) {
    const s = stripProvider(props) as unknown as Partial<ImageState>;
    const client = await ctx.client();
    if (s.cached === undefined || s.datacenter === undefined || s.kind === undefined) {
      // From the id alone: look for the image on the cluster's datastores.
      const cfg = ctx.config();
      const cluster = await clusterOf(ctx, client, s.clusterName);
      const names = (await getDatastores(client, cluster.datastores)).map((d) => d.name).sort();
      const cachePrefix = cfg.cachePrefix ?? "";
      for (const kind of ["disk", "iso"] as const) {
        const { cached } = await readCopies(client, cluster.datacenter, names, cachePrefix, id, kind);
        const first = Object.values(cached)[0];
        if (!first) continue;
        const outs = { imageId: id, kind, cachePrefix, clusterName: cluster.name, datacenter: cluster.datacenter.name, cached, path: first.path, missingDatastores: [] };
        return { id, props: outs };
      }
      return { id: "", props: {} };
    }
    let dc: Datacenter;
    try {
      dc = await getDatacenter(client, s.datacenter);
    } catch (err) {
      if (err instanceof NotFoundError) return { id: "", props: {} };
      throw err;
    }
    const all = [...new Set([...Object.keys(s.cached), ...(s.missingDatastores ?? [])])];
    const { cached, missing } = await readCopies(client, dc, all, s.cachePrefix ?? "", s.imageId ?? id, s.kind);
    const first = Object.values(cached)[0];
    return { id, props: { ...s, cached, missingDatastores: missing, path: first?.path ?? s.path ?? "" } };
  },

  async update(ctx, _id, olds, news) {
    const o = stripProvider(olds) as unknown as ImageState;
    const n = stripProvider(news) as unknown as Resolved;
    const cfg = ctx.config();
    const client = await ctx.client();
    const cluster = await clusterOf(ctx, client, o.clusterName, o.datacenter);
    const dc = cluster.datacenter;
    const present = Object.keys(o.cached ?? {});
    const required = o.capacityBytes ?? o.sizeBytes;
    // Only a datastore that does not have the copy yet must have room for it.
    const adding = n.datastores?.filter((ds) => !present.includes(ds));
    if (adding?.length) await chooseDatastores(client, cluster, adding, cfg.datastoreRegex, required);
    const wanted = n.datastores ? [...new Set(n.datastores)] : [...new Set([...present, ...(o.missingDatastores ?? [])])];
    if (wanted.length === 0) wanted.push(...(await chooseDatastores(client, cluster, undefined, cfg.datastoreRegex, required)));
    const loc = (ds: string) => cacheLocation(ds, o.cachePrefix, o.imageId, o.kind);

    // Copies wanted and missing: from a copy that is there, else from the source (which must still be the same content).
    const placed = await place(client, {
      cluster,
      cachePrefix: o.cachePrefix,
      imageId: o.imageId,
      kind: o.kind,
      wanted,
      r: { ...n, checksum: o.sha256 ? `sha256:${o.sha256}` : n.checksum },
      sha256: undefined,
      inspected: () => inspectSource(specOf(n)),
    });
    await Promise.all(wanted.map((ds) => addHolder(client, dc, loc(ds).folder, o.holder, { imageId: o.imageId })));

    // Copies no longer wanted (a shorter datastores list): gone unless held or in use.
    const dropped = n.datastores ? present.filter((ds) => !wanted.includes(ds)) : [];
    if (dropped.length) await release(client, dc, o, dropped, true);

    let md5 = o.md5 ?? placed.md5;
    if (n.computeMd5 && md5 === undefined) md5 = (await digestSource(await inspectSource(specOf(n)), ["sha256", "md5"])).md5;
    const { cached, missing } = await readCopies(client, dc, wanted, o.cachePrefix, o.imageId, o.kind);
    if (missing.length) throw new Error(`image ${o.imageId} is not in the cache of ${missing.join(", ")} after it was put there (deleted meanwhile?)`);
    const outs: ImageState = {
      ...o,
      ...n,
      imageId: o.imageId,
      clusterName: o.clusterName,
      osType: n.osType ?? o.detectedOsType ?? "otherGuest",
      linkedClone: n.linkedClone ?? cfg.useLinkedClone,
      hypervisorType: "vmware",
      ...(o.kind === "disk" ? { adapterType: n.adapterType ?? o.detectedAdapterType ?? o.adapterType } : {}),
      declared: declaredOf(n),
      ...(md5 ? { md5 } : {}),
      cached,
      path: Object.values(cached)[0]?.path ?? o.path,
      missingDatastores: [],
    };
    return { outs: outs as unknown as Record<string, unknown> };
  },

  async delete(ctx, _id, props) {
    const s = stripProvider(props) as unknown as ImageState;
    if (!s.cached || !s.datacenter) return;
    const client = await ctx.client();
    let dc: Datacenter;
    try {
      dc = await getDatacenter(client, s.datacenter);
    } catch (err) {
      if (err instanceof NotFoundError) return; // the datacenter is gone, and the cache with it
      throw err;
    }
    await release(client, dc, s, Object.keys(s.cached), s.retainWhileInUse ?? false);
  },
};

/**
 * Lets go of the copies on `datastores`: each is removed unless another holder keeps it
 * or a VM's disk chain uses it. In use: an error naming the VMs (nothing changed), or
 * with `retain`, the copy is left for the cache policy and a warning says so.
 */
async function release(client: VimClient, dc: Datacenter, s: ImageState, datastores: string[], retain: boolean): Promise<void> {
  // One listing per folder says both who else holds the copy and which disks to ask about.
  const folders = await Promise.all(
    datastores.map(async (ds) => {
      const folder = cacheLocation(ds, s.cachePrefix, s.imageId, s.kind).folder;
      const files = await filesIn(client, dc, folder);
      return { ds, folder, files: files ?? [], gone: files === undefined, others: holdersIn((files ?? []).map((f) => f.name)).filter((h) => h !== s.holder) };
    }),
  );
  const sole = folders.filter((f) => !f.gone && f.others.length === 0);
  const users = await usersOf(client, sole);
  if (users.size && !retain) {
    const list = [...users].map(([ds, vms]) => `${ds}: ${vms.slice(0, 5).join(", ")}${vms.length > 5 ? ", ..." : ""}`).join("; ");
    throw new ImageInUseError(
      `image ${s.imageId} is still used by VMs (${list}): delete or move those VMs first, or set retainWhileInUse: true to leave the used copies to the image cache policy`,
    );
  }
  await Promise.all(
    folders.map(async (f) => {
      if (f.gone) return;
      if (sole.includes(f) && !users.has(f.ds)) {
        await removeCachedImage(client, dc, f.ds, s.cachePrefix, s.imageId); // the marker goes with the folder
        return;
      }
      await removeHolder(client, dc, f.folder, s.holder);
      if (users.has(f.ds)) warn(`image ${s.imageId} on ${f.ds} is used by ${users.get(f.ds)!.join(", ")}: left in the cache for the image cache policy (retainWhileInUse)`);
    }),
  );
}

/** A delete refused because VMs use the image. */
export class ImageInUseError extends VSphereError {
  readonly code = "ImageInUse";
}

function declaredOf(r: Resolved): ImageState["declared"] {
  const d: ImageState["declared"] = {};
  if (r.diskType !== undefined) d.diskType = r.diskType;
  if (r.adapterType !== undefined) d.adapterType = r.adapterType;
  if (r.osType !== undefined) d.osType = r.osType;
  if (r.linkedClone !== undefined) d.linkedClone = r.linkedClone;
  if (r.imageId !== undefined) d.imageId = r.imageId;
  if (r.datastores !== undefined) d.datastores = r.datastores;
  return d;
}

function stateOf(
  r: Resolved,
  inspected: InspectedSource,
  x: {
    imageId: string;
    contentImageId: string;
    holder: string;
    cachePrefix: string;
    cluster: Cluster;
    kind: CachedKind;
    cfg: { useLinkedClone: boolean };
    sha256: string | undefined;
    md5: string | undefined;
    cached: Record<string, ImageCopy>;
    wanted: string[];
    contentId: string | undefined;
  },
): ImageState {
  const vmdk = inspected.disk?.vmdk;
  const diskType = effectiveDiskType(inspected, r.diskType);
  const adapterType = effectiveAdapterType(inspected, r.adapterType);
  const fromOvf = effectiveOsType(inspected, undefined);
  const detectedOsType = fromOvf === "otherGuest" ? undefined : fromOvf;
  const detectedAdapterType = effectiveAdapterType(inspected, undefined);
  const detectedDiskType = effectiveDiskType(inspected, undefined);
  return {
    ...r,
    ...(x.contentId ? { contentId: x.contentId } : {}),
    sourceFingerprint: inspected.fingerprint,
    imageId: x.imageId,
    contentImageId: x.contentImageId,
    flatUpload: flatShape(inspected, r) !== undefined,
    holder: x.holder,
    cachePrefix: x.cachePrefix,
    clusterName: x.cluster.name,
    datacenter: x.cluster.datacenter.name,
    kind: x.kind,
    format: inspected.info.format,
    formatDescription: describeFormat(inspected.info),
    ...(vmdk ? { createType: vmdk.createType } : {}),
    ...(diskType ? { diskType } : {}),
    ...(adapterType ? { adapterType } : {}),
    osType: effectiveOsType(inspected, r.osType),
    ...(detectedOsType ? { detectedOsType } : {}),
    ...(detectedAdapterType ? { detectedAdapterType } : {}),
    ...(detectedDiskType ? { detectedDiskType } : {}),
    linkedClone: r.linkedClone ?? x.cfg.useLinkedClone,
    hypervisorType: "vmware",
    ...(inspected.capacityBytes !== undefined ? { capacityBytes: inspected.capacityBytes } : {}),
    ...(vmdk?.hardwareVersion !== undefined ? { hardwareVersion: vmdk.hardwareVersion } : {}),
    ...(inspected.sizeBytes !== undefined ? { sizeBytes: inspected.sizeBytes } : {}),
    ...(x.sha256 ? { sha256: x.sha256 } : {}),
    ...(x.md5 ? { md5: x.md5 } : {}),
    declared: declaredOf(r),
    cached: x.cached,
    path: x.cached[x.wanted[0]!]!.path,
    missingDatastores: [],
  };
}
