// Image: a disk image (VMDK, OVA, ISO; qcow2, VHD(X), VDI and raw through qemu-img)
// streamed from a local file or a URL into the datastore image cache, the way Nova's
// VMware driver caches Glance images (`[ds] <cachePrefix>_base/<imageId>/<imageId>.vmdk`),
// with its properties (vmware_disktype, vmware_adaptertype, vmware_ostype,
// img_linked_clone, img_hv_type) as inputs. Instance boots from it.
import * as pulumi from "@pulumi/pulumi";
import { createHash, randomUUID } from "node:crypto";
import { resolve as resolvePath } from "node:path";
import { NoSuitableDatastoreError, NotFoundError } from "../vsphere/errors.js";
import { cacheLocation, type CachedKind } from "../vsphere/image-cache.js";
import { ChecksumMismatchError } from "../vsphere/image-errors.js";
import { describeFormat } from "../vsphere/image-format.js";
import { addHolder, removeHolder } from "../vsphere/image-holders.js";
import { digestSource, inspectSource, type InspectedSource, type SourceFingerprint } from "../vsphere/image-source.js";
import { getDatacenter, getDatastores, type Cluster, type Datacenter } from "../vsphere/inventory.js";
import type { AdapterType, DiskType } from "../vsphere/vmdk.js";
import { clusterOf } from "./cluster-lookup.js";
import { checkFailures, stripProvider, throwFailures, unknownInputFailures } from "./check.js";
import { changeKind, propertyPath, withDetail, type DetailEntry } from "./detailed-diff.js";
import type { ResourceHandler } from "./handler-types.js";
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
import { algorithmsFor, cachedLook, checksumOf, chooseDatastores, place, readCopies, release, rollback, type ImageCopy, type Placed } from "./image-placement.js";
import { dynamicProvider } from "./provider.js";

export type { ImageArgs } from "./image-inputs.js";
export { ImageInUseError, type ImageCopy } from "./image-placement.js";

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
    // Every property the class declares must be in the inputs, or the engine never makes it an
    // output: an input left out (imageId, adapterType, linkedClone, ...) would read as undefined.
    const inputs: Record<string, unknown> = { ...Object.fromEntries([...INPUT_KEYS, ...OUTPUT_KEYS].map((k) => [k, undefined])), ...args };
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

function specOf(r: { source: string; headers?: Record<string, string> | undefined; extents?: string[] | undefined }) {
  return { source: r.source, ...(r.headers ? { headers: r.headers } : {}), ...(r.extents ? { extents: r.extents } : {}) };
}

/** The error of a failed inspection, as the check failure of the input to fix. */
function inspectFailure(err: unknown): pulumi.dynamic.CheckFailure {
  const e = err as { code?: string; status?: number; message?: string };
  const property = e.code === "SourceFetchFailed" && (e.status === 401 || e.status === 403) ? "headers" : "source";
  return { property, reason: e.message ?? String(err) };
}

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

    // What an update would change, each with its property path; any entry is an update.
    const d = o.declared ?? {};
    const inputs: DetailEntry[] = [];
    const drift: DetailEntry[] = [];
    const given = (k: "osType" | "linkedClone") => (isUnknown(n[k]) ? undefined : n[k]);
    if (adapterChanged) inputs.push({ path: "adapterType", kind: changeKind(d.adapterType, n.adapterType) });
    if (!isUnknown(n.osType) && (given("osType") ?? o.detectedOsType ?? "otherGuest") !== o.osType) inputs.push({ path: "osType", kind: changeKind(d.osType, n.osType) });
    if (!isUnknown(n.linkedClone) && (given("linkedClone") ?? cfg.useLinkedClone) !== o.linkedClone) {
      // Neither written nor removed: vmware:useLinkedClone changed.
      const fromConfig = d.linkedClone === undefined && n.linkedClone === undefined;
      (fromConfig ? drift : inputs).push({ path: "linkedClone", kind: changeKind(d.linkedClone, n.linkedClone), inputDiff: !fromConfig });
    }
    if (!isUnknown(n.computeMd5) && n.computeMd5 === true && o.md5 === undefined) {
      inputs.push(o.computeMd5 === true ? { path: "md5", kind: "ADD", inputDiff: false } : { path: "computeMd5", kind: changeKind(o.computeMd5, n.computeMd5) });
    }
    if (!isUnknown(n.datastores) && canonical(n.datastores ?? null) !== canonical(d.datastores ?? null)) inputs.push({ path: "datastores", kind: changeKind(d.datastores, n.datastores) });
    if (!isUnknown(n.retainWhileInUse) && (n.retainWhileInUse ?? false) !== (o.retainWhileInUse ?? false)) inputs.push({ path: "retainWhileInUse", kind: changeKind(o.retainWhileInUse, n.retainWhileInUse) });
    if (!isUnknown(n.checksum) && (n.checksum ?? undefined) !== (o.checksum ?? undefined)) inputs.push({ path: "checksum", kind: changeKind(o.checksum, n.checksum) });
    if (!isUnknown(n.headers) && canonical(n.headers ?? null) !== canonical(o.headers ?? null)) inputs.push({ path: "headers", kind: changeKind(o.headers, n.headers) });
    if (!isUnknown(n.source) && n.source !== o.source) inputs.push({ path: "source", kind: changeKind(o.source, n.source) });
    for (const ds of o.missingDatastores ?? []) drift.push({ path: propertyPath("cached", ds), kind: "ADD", inputDiff: false });

    if (replaces.length) {
      const replaced: DetailEntry[] = replaces.map((k) => {
        if (k === "cachePrefix") return { path: k, kind: changeKind(o.cachePrefix || undefined, cfg.cachePrefix || undefined), inputDiff: false };
        if (k === "diskType" || k === "adapterType" || k === "imageId") return { path: k, kind: changeKind(d[k], n[k]) };
        return { path: k, kind: changeKind((o as unknown as Record<string, unknown>)[k], (n as unknown as Record<string, unknown>)[k]) };
      });
      return withDetail({ changes: true, replaces, deleteBeforeReplace: false }, [...replaced, ...inputs]);
    }
    const update = inputs.length + drift.length > 0;
    if (unknowns.length && !update) return { replaces: [] };
    return withDetail({ changes: update, replaces: [] }, [...inputs, ...drift]);
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
    const cachedOn = cachedLook(client, cluster.datacenter, cachePrefix, imageId, kind);
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
        isCached: cachedOn,
      });
      const note = markerNote({
        imageId,
        kind,
        format: inspected.info.format,
        diskType: effectiveDiskType(inspected, r.diskType),
        adapterType: effectiveAdapterType(inspected, r.adapterType),
        osType: effectiveOsType(inspected, r.osType),
        linkedClone: r.linkedClone ?? cfg.useLinkedClone,
        capacityBytes: inspected.capacityBytes,
        sha256: placed.sha256 ?? sha256,
      });
      await Promise.all(wanted.map((ds) => addHolder(client, cluster.datacenter, cacheLocation(ds, cachePrefix, imageId, kind).folder, holder, note)));
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
      // With its datastores' browsers, for the searches that follow (one read for both).
      dc = await getDatacenter(client, s.datacenter, { datastores: true });
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
    const note = markerNote({
      imageId: o.imageId,
      kind: o.kind,
      format: o.format,
      diskType: o.diskType,
      adapterType: o.kind === "disk" ? (n.adapterType ?? o.detectedAdapterType ?? o.adapterType) : undefined,
      osType: n.osType ?? o.detectedOsType ?? "otherGuest",
      linkedClone: n.linkedClone ?? cfg.useLinkedClone,
      capacityBytes: o.capacityBytes,
      sha256: o.sha256,
    });
    await Promise.all(wanted.map((ds) => addHolder(client, dc, loc(ds).folder, o.holder, note)));

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
      // With its datastores' browsers, for the listing that follows (one read for both).
      dc = await getDatacenter(client, s.datacenter, { datastores: true });
    } catch (err) {
      if (err instanceof NotFoundError) return; // the datacenter is gone, and the cache with it
      throw err;
    }
    await release(client, dc, s, Object.keys(s.cached), s.retainWhileInUse ?? false);
  },
};

/**
 * What an Instance needs of the image, written into this resource's holder marker in each
 * cache folder (and rewritten when a property changes): another stack can then boot from
 * the image by its id alone, as Nova reads Glance's image properties.
 */
function markerNote(
  p: Pick<ImageState, "imageId" | "kind" | "format" | "osType" | "linkedClone"> & {
    diskType: DiskType | undefined;
    adapterType: AdapterType | undefined;
    capacityBytes: number | undefined;
    sha256: string | undefined;
  },
): Record<string, unknown> {
  return Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined));
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
