// Image inputs: the Args type users write, the zod schema `check` validates with, and
// the rules that tie the inputs to what the source file is (Nova's image properties,
// camelCase: vmware_disktype, vmware_adaptertype, vmware_ostype, img_linked_clone,
// img_hv_type).
import type * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { parseChecksum } from "../vsphere/checksum.js";
import { GUEST_OS_NAMES, closestGuestOsIds, isGuestOsId } from "../vsphere/guest-os.js";
import { imageIdSchema } from "../vsphere/image-cache.js";
import type { InspectedSource, SourceFingerprint } from "../vsphere/image-source.js";
import { ADAPTER_TYPES, DISK_TYPES, contradictions, type AdapterType, type DiskType } from "../vsphere/vmdk.js";

export interface ImageArgs {
  /**
   * The image: a local path (a relative path is made absolute against the program's
   * working directory, where `pulumi` runs it: the project folder) or an
   * http(s) URL (redirects are followed). VMDK (monolithicSparse, streamOptimized, or a
   * monolithicFlat descriptor with its -flat file beside it), OVA, ISO; qcow2, VHD(X),
   * VDI and raw disks are converted with qemu-img. The format is read from the bytes.
   */
  source: pulumi.Input<string>;
  /**
   * For a flat VMDK descriptor whose extent is not the file beside it: the extent(s) as
   * sources of their own (paths or http(s) URLs, one per extent line, in order), e.g. a
   * presigned URL of the -flat file. `headers` go to these URLs too.
   */
  extents?: pulumi.Input<pulumi.Input<string>[]>;
  /** HTTP headers for a URL source (e.g. Authorization). Kept secret in the state. */
  headers?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** Nova's vmware_disktype: sparse | thin | preallocated | streamOptimized. Default: read from the file. */
  diskType?: pulumi.Input<DiskType>;
  /** Nova's vmware_adaptertype: ide | lsiLogic | busLogic | lsiLogicsas | paraVirtual. Default: the file's ddb.adapterType (an OVA's controller). */
  adapterType?: pulumi.Input<AdapterType>;
  /** Nova's vmware_ostype: a vSphere guest id such as "ubuntu64Guest". Default: an OVA's, else "otherGuest". */
  osType?: pulumi.Input<string>;
  /** Nova's img_linked_clone: boot instances as linked clones of this image. Default: `vmware:useLinkedClone`. */
  linkedClone?: pulumi.Input<boolean>;
  /** Nova's img_hv_type: the hypervisor the image is for. Only "vmware" (the default) runs here. */
  hypervisorType?: pulumi.Input<"vmware">;
  /** Expected digest, "sha256:<64 hex>" or "md5:<32 hex>" (Glance's checksum), of the source file (an OVA: the .ova; a flat descriptor: its -flat data). A mismatch publishes nothing. */
  checksum?: pulumi.Input<string>;
  /** Also compute the md5 (Glance's checksum) while streaming. */
  computeMd5?: pulumi.Input<boolean>;
  /** The cache folder name. Default: derived from the content (the first 32 hex of its sha256), so the same image is cached once. */
  imageId?: pulumi.Input<string>;
  /** The cluster whose hosts must all see the datastores. Default: `vmware:clusterName`. */
  clusterName?: pulumi.Input<string>;
  /** Datastores to cache the image on, up front. Default: one, chosen as Nova does (`vmware:datastoreRegex`, else most free space). */
  datastores?: pulumi.Input<pulumi.Input<string>[]>;
  /** On delete, leave cached copies that VMs still use to the cache policy instead of failing. */
  retainWhileInUse?: pulumi.Input<boolean>;
}

export const INPUT_KEYS = [
  "source",
  "extents",
  "headers",
  "diskType",
  "adapterType",
  "osType",
  "linkedClone",
  "hypervisorType",
  "checksum",
  "computeMd5",
  "imageId",
  "clusterName",
  "datastores",
  "retainWhileInUse",
] as const;

/** Inputs check computes (not for users to set): what identifies the source's content. */
export const COMPUTED_INPUT_KEYS = ["sourceFingerprint", "contentId"] as const;

const sourceSchema = z
  .string()
  .trim()
  .min(1, "a local path or an http(s) URL")
  .refine((s) => !/^[a-z][a-z0-9+.-]*:\/\//i.test(s) || /^https?:\/\//i.test(s), "a local path or an http(s) URL (other URL schemes are not fetched)")
  // The source is stored in plain text in the state; credentials belong in `headers`, which is secret.
  .refine((s) => !/^https?:\/\/[^/?#]*@/i.test(s), "a URL without user:password@ (give credentials in headers, e.g. { Authorization: \"Basic ...\" }, which the state keeps secret)");

export const InputsSchema = z.strictObject({
  source: sourceSchema,
  extents: z.array(sourceSchema).min(1, "at least one extent source (or leave extents out)").optional(),
  headers: z.record(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, "an HTTP header name"), z.string()).optional(),
  diskType: z.enum(DISK_TYPES).optional(),
  adapterType: z.enum(ADAPTER_TYPES).optional(),
  osType: z.string().trim().min(1, "a vSphere guest id such as ubuntu64Guest").optional(),
  linkedClone: z.boolean().optional(),
  hypervisorType: z.literal("vmware", 'the hypervisor this driver runs: "vmware" (Nova\'s img_hv_type for vSphere)').optional(),
  checksum: z.string().trim().optional(),
  computeMd5: z.boolean().default(false),
  imageId: imageIdSchema.optional(),
  clusterName: z.string().trim().min(1).optional(),
  datastores: z.array(z.string().trim().min(1, "a datastore name")).min(1, "at least one datastore name (or leave datastores out)").optional(),
  retainWhileInUse: z.boolean().default(false),
});
export type Inputs = z.infer<typeof InputsSchema>;

/** Checked inputs: the inputs, plus what check learned of the source. */
export interface Resolved extends Inputs {
  sourceFingerprint?: SourceFingerprint;
  /** "sha256:<hex>" (a file hashed at check, or the checksum), "md5:<hex>", or "url:<url>|etag:...": what says the content is the same. */
  contentId?: string;
}

/** A guest id input (`property`: osType, guestId): a known id, else a failure naming the closest ones with their names. */
export function guestIdInputFailure(property: string, id: string): pulumi.dynamic.CheckFailure | undefined {
  if (isGuestOsId(id)) return undefined;
  const near = closestGuestOsIds(id, 3);
  return {
    property,
    reason: `${property} ${JSON.stringify(id)} is not a vSphere guest id (VirtualMachineGuestOsIdentifier)${near.length ? `; did you mean ${near.map((n) => `"${n}"${GUEST_OS_NAMES[n] ? ` (${GUEST_OS_NAMES[n]})` : ""}`).join(", ")}?` : ""}`,
  };
}

/** osType: a known guest id, else a failure naming the closest ones. */
export function osTypeFailure(osType: string): pulumi.dynamic.CheckFailure | undefined {
  return guestIdInputFailure("osType", osType);
}

export function checksumFailure(text: string): pulumi.dynamic.CheckFailure | undefined {
  const parsed = parseChecksum(text);
  return "error" in parsed ? { property: "checksum", reason: parsed.error } : undefined;
}

/** What the declared diskType / adapterType say against the source's bytes (failures at check). */
export function typeFailures(inspected: InspectedSource, declared: { diskType?: DiskType; adapterType?: AdapterType }): pulumi.dynamic.CheckFailure[] {
  const { info } = inspected;
  const out: pulumi.dynamic.CheckFailure[] = [];
  if (info.format === "iso") {
    if (declared.diskType !== undefined) out.push({ property: "diskType", reason: `${inspected.name} is an ISO image (attached as a CD-ROM), not a disk: remove diskType` });
    if (declared.adapterType !== undefined) out.push({ property: "adapterType", reason: `${inspected.name} is an ISO image (attached to an IDE CD-ROM), not a disk: remove adapterType` });
    return out;
  }
  if (inspected.disk) {
    for (const c of contradictions(inspected.disk.vmdk, declared)) out.push({ property: c.property, reason: `${inspected.name}: ${c.message}` });
    return out;
  }
  // A disk made here: raw uploads as a flat disk; the converted formats become monolithicSparse.
  const made = inspected.conversion ? "sparse" : undefined;
  if (declared.diskType !== undefined && made && declared.diskType !== made) {
    out.push({
      property: "diskType",
      reason: `${inspected.name} is ${info.format}, converted with qemu-img to a monolithicSparse VMDK: diskType must be "sparse" or left out, not "${declared.diskType}"`,
    });
  }
  if (declared.diskType !== undefined && !made && declared.diskType !== "thin" && declared.diskType !== "preallocated") {
    out.push({ property: "diskType", reason: `${inspected.name} is a raw disk, uploaded as a flat disk: diskType must be "thin" or "preallocated" (or left out), not "${declared.diskType}"` });
  }
  return out;
}

/** The disk type the source has (declared or read from the file); undefined for an ISO. */
export function effectiveDiskType(inspected: InspectedSource, declared: DiskType | undefined): DiskType | undefined {
  if (inspected.info.format === "iso") return undefined;
  if (inspected.disk) {
    const file = inspected.disk.vmdk.diskType;
    // thin and preallocated upload the same bytes: the declared one decides the cached copy.
    return declared !== undefined && (file === "thin" || file === "preallocated") ? declared : file;
  }
  return inspected.conversion ? "sparse" : (declared ?? "preallocated");
}

/** The adapter type the cached disk is for: declared, else the file's (an OVA's controller), else Nova's default lsiLogic. */
export function effectiveAdapterType(inspected: InspectedSource, declared: AdapterType | undefined): AdapterType | undefined {
  if (inspected.info.format === "iso") return undefined;
  return declared ?? inspected.disk?.adapterType ?? "lsiLogic";
}

/** The guest id: declared, else an OVA's (when it is a known id), else Nova's default otherGuest. */
export function effectiveOsType(inspected: InspectedSource | undefined, declared: string | undefined): string {
  if (declared !== undefined) return declared;
  const fromOvf = inspected?.ovf?.osType;
  return fromOvf !== undefined && isGuestOsId(fromOvf) ? fromOvf : "otherGuest";
}

/**
 * Same fingerprint: the same files with the same sizes and times, or the same URL version.
 * Compared canonically: a state's objects come back from the engine with their keys sorted.
 */
export function sameFingerprint(a: SourceFingerprint | undefined, b: SourceFingerprint | undefined): boolean {
  return a !== undefined && b !== undefined && canonical(a) === canonical(b);
}

/** JSON with object keys sorted, for comparing values that went through a protobuf Struct. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (typeof v === "object" && v !== null) {
    return `{${Object.keys(v)
      .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v) ?? "null";
}

/**
 * What identifies a URL's content without reading it: the declared checksum, else the
 * URL with its ETag or Last-Modified and size; undefined when the server gives neither
 * (a change cannot then be seen before reading it: declare a checksum).
 */
export function urlContentId(fp: SourceFingerprint, checksum: string | undefined): string | undefined {
  if (checksum) return checksum.trim().toLowerCase();
  if (fp.kind !== "url" || (fp.etag === undefined && fp.lastModified === undefined)) return undefined;
  // Extents given apart are part of the content: their versions too.
  const extents = fp.extents ? `|extents:${canonical(fp.extents)}` : "";
  return `url:${fp.url}|${fp.etag !== undefined ? `etag:${fp.etag}` : `modified:${fp.lastModified}`}|size:${fp.size ?? "?"}${extents}`;
}
