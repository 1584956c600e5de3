// An image SOURCE (a local path or an http(s) URL) as the Image resource sees it:
// inspectSource tells cheaply what it is (at preview), digestSource hashes its bytes,
// openSource streams it as a PublishSource with its digests computed on the way.
// Only a format vCenter cannot take is written to a temp folder (image-convert.ts).
import { createReadStream, createWriteStream } from "node:fs";
import { rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ByteSource } from "./byte-reader.js";
import { checkQemuImg, conversionOf, convertToVmdk, qemuVirtualSize } from "./image-convert.js";
import { SourceChangedError, UnsupportedImageError } from "./image-errors.js";
import { describeFormat, PREFIX_BYTES, type ImageInfo } from "./image-format.js";
import { publishSourceOf, type PublishSource } from "./image-publish.js";
import { httpTarget, prefixSource, urlExtents } from "./image-source-http.js";
import { extentPrints, givenExtents, type ExtentPrint } from "./image-source-extents.js";
import { checkFiles, hashTap, Holdings, mainBytes, sourceBytes, statFile } from "./image-source-read.js";
import { sniffImage, sniffImageFile } from "./image-stream.js";
import { openOva } from "./ova.js";
import type { AdapterType, VmdkInfo } from "./vmdk.js";

export interface SourceSpec {
  /** A local path (absolute, or relative to process.cwd()) or an http(s) URL. */
  source: string;
  /** HTTP request headers for a URL, e.g. Authorization. */
  headers?: Record<string, string>;
  /**
   * For a flat descriptor: its extents as sources of their own (paths or URLs, in the
   * descriptor's order) instead of the files its extent lines name beside it.
   */
  extents?: string[];
}

export type SourceFingerprint =
  /** The file, then a descriptor's extents, in order. */
  | { kind: "file"; files: Array<{ path: string; size: number; mtimeMs: number }>; extents?: ExtentPrint[] }
  /** `url` is the final URL after redirects. */
  | { kind: "url"; url: string; size?: number; etag?: string; lastModified?: string; extents?: ExtentPrint[] };

export interface InspectedSource {
  spec: SourceSpec;
  /** Names the source in messages: the absolute path, or the URL without userinfo or query values. */
  name: string;
  fingerprint: SourceFingerprint;
  /** What the source's bytes are ("ova" for an OVA). */
  info: ImageInfo;
  /** The disk to publish (a VMDK's own; an OVA's boot disk with the OVF's controller); none for ISO, raw and converted formats. */
  disk?: { vmdk: VmdkInfo; adapterType: AdapterType };
  /** OVA only, from the .ovf. */
  ovf?: { osType?: string; name?: string };
  /** The disk's virtual size when known; an ISO's size. */
  capacityBytes?: number;
  /** Bytes in the source (a descriptor's extents included). */
  sizeBytes?: number;
  conversion?: { tool: "qemu-img"; from: "qcow2" | "vpc" | "vhdx" | "vdi" | "raw" };
}

export type SourceDigestAlgorithm = "sha256" | "md5";
/** Bytes read, and the digests asked for. */
export interface SourceDigests {
  sha256?: string;
  md5?: string;
  bytes: number;
}

export interface OpenedSource {
  /** What publishImage takes; its stream is read once. */
  publish: PublishSource;
  /** Of the source bytes (as digestSource defines them); rejects if the read failed or stopped early. */
  digests: Promise<SourceDigests>;
  /** Removes temp files, closes what is open; idempotent. */
  dispose(): Promise<void>;
}

export interface OpenOptions {
  /**
   * Digests of the source to compute as it streams. [] for none: when the bytes sent are
   * the source's (a VMDK, a flat descriptor's extents, an ISO, a raw disk), the upload
   * hashes them already, and hashing twice costs throughput.
   */
  algorithms: SourceDigestAlgorithm[];
  /** Overrides the file's (or the OVF's) adapter; picks qemu-img's adapter_type for a conversion. */
  adapterType?: AdapterType;
  /** For a raw disk published as a flat disk (default preallocated). */
  diskType?: "thin" | "preallocated";
  tmpDir?: string;
  qemuImg?: string;
  signal?: AbortSignal;
}

const isUrl = (s: string) => /^https?:\/\//i.test(s);

/** What a source is, from its first bytes (an OVA: up to its boot disk's header). */
export async function inspectSource(spec: SourceSpec, opts: { signal?: AbortSignal; qemuImg?: string } = {}): Promise<InspectedSource> {
  if (/^[a-z][a-z0-9+.-]+:\/\//i.test(spec.source) && !isUrl(spec.source)) {
    throw new UnsupportedImageError(spec.source, `a ${spec.source.split(":")[0]} URL`, "Give a local path or an http(s) URL.");
  }
  const tool = opts.qemuImg ?? "qemu-img";
  const inspected = isUrl(spec.source) ? await inspectUrl(spec, opts.signal) : await inspectFile(spec);
  const from = conversionOf(inspected.info);
  if (from) {
    await checkQemuImg(tool, inspected.name, from);
    inspected.conversion = { tool: "qemu-img", from };
    if (inspected.capacityBytes === undefined && inspected.fingerprint.kind === "file") {
      const size = await qemuVirtualSize(tool, inspected.fingerprint.files[0]!.path, from);
      if (size !== undefined) inspected.capacityBytes = size;
    }
  }
  return inspected;
}

async function inspectFile(spec: SourceSpec): Promise<InspectedSource> {
  const path = resolve(spec.source);
  const st = await statFile(spec.source, path);
  // Extents given apart: the descriptor alone is sniffed (its extent lines name no file here).
  const sniffed = spec.extents
    ? { ...(await sniffImage(createReadStream(path, { highWaterMark: PREFIX_BYTES }), { source: path, size: st.size })), extents: [] }
    : await sniffImageFile(path, { source: path });
  sniffed.stream.destroy();
  const files = [{ path, size: st.size, mtimeMs: st.mtimeMs }];
  for (const e of sniffed.extents) {
    const x = await stat(e.path);
    files.push({ path: e.path, size: x.size, mtimeMs: x.mtimeMs });
  }
  let base: Base = { spec, name: path, fingerprint: { kind: "file" as const, files }, sizeBytes: files.reduce((n, f) => n + f.size, 0) };
  if (spec.extents) base = await withGivenExtents(base, sniffed.info);
  if (sniffed.info.format !== "ova") return describe(base, sniffed.info);
  return describeOva(base, sniffed.info, createReadStream(path, { highWaterMark: PREFIX_BYTES }));
}

async function inspectUrl(spec: SourceSpec, signal: AbortSignal | undefined): Promise<InspectedSource> {
  const target = httpTarget(spec.source, spec.headers, signal);
  const { answer, bytes } = await prefixSource(target);
  const fingerprint: SourceFingerprint = {
    kind: "url",
    url: answer.url,
    ...(answer.size !== undefined ? { size: answer.size } : {}),
    ...(answer.etag !== undefined ? { etag: answer.etag } : {}),
    ...(answer.lastModified !== undefined ? { lastModified: answer.lastModified } : {}),
  };
  const sniffed = await sniffImage(bytes, { source: target.name, ...(answer.size !== undefined ? { size: answer.size } : {}) });
  const base = { spec, name: target.name, fingerprint, ...(answer.size !== undefined ? { sizeBytes: answer.size } : {}) };
  if (sniffed.info.format === "ova") return describeOva(base, sniffed.info, sniffed.stream);
  sniffed.stream.destroy();
  if (spec.extents) return describe(await withGivenExtents(base, sniffed.info), sniffed.info);
  if (sniffed.info.format === "vmdkDescriptor") {
    const extents = await urlExtents(sniffed.info.vmdk.descriptor, answer, target);
    const all = extents.every((e) => e.size !== undefined) && answer.size !== undefined;
    const { sizeBytes: _, ...rest } = base;
    return describe(all ? { ...rest, sizeBytes: extents.reduce((n, e) => n + e.size!, answer.size!) } : rest, sniffed.info);
  }
  return describe(base, sniffed.info);
}

type Base = Pick<InspectedSource, "spec" | "name" | "fingerprint" | "sizeBytes">;

/** A descriptor's extents given as sources of their own: checked, and recorded in the fingerprint. */
async function withGivenExtents(base: Base, info: ImageInfo): Promise<Base> {
  if (info.format !== "vmdkDescriptor") {
    throw new UnsupportedImageError(base.name, `extents given for ${describeFormat(info)}`, "Extents are given only for a flat VMDK descriptor (monolithicFlat, twoGbMaxExtentFlat): remove extents.");
  }
  const given = await givenExtents(info.vmdk.descriptor, base.spec.extents ?? [], { name: base.name, ...(base.spec.headers ? { headers: base.spec.headers } : {}) });
  const sizes = given.map((e) => e.size);
  const { sizeBytes, ...rest } = base;
  const total = sizeBytes !== undefined && sizes.every((n) => n !== undefined) ? sizes.reduce((n: number, x) => n + x!, sizeBytes) : undefined;
  return { ...rest, fingerprint: { ...base.fingerprint, extents: extentPrints(given) }, ...(total !== undefined ? { sizeBytes: total } : {}) };
}

function describe(base: Base, info: ImageInfo): InspectedSource {
  switch (info.format) {
    case "vmdk":
    case "vmdkDescriptor":
      return { ...base, info, disk: { vmdk: info.vmdk, adapterType: info.vmdk.adapterType }, capacityBytes: info.vmdk.capacityBytes };
    case "iso":
      return { ...base, info, ...(info.size !== undefined ? { capacityBytes: info.size } : {}) };
    case "raw":
      if (info.evidence === "none") {
        throw new UnsupportedImageError(
          base.name,
          "a file of no known image format (no VMDK, OVA, ISO 9660, qcow2, VHD, VHDX or VDI header, and no MBR or GPT partition table)",
          "An unrecognized file is not uploaded as a disk. If it really is a raw disk image, convert it: " +
            "`qemu-img convert -f raw -O vmdk -o subformat=streamOptimized disk.raw disk.vmdk`, and give disk.vmdk.",
        );
      }
      return { ...base, info, ...(info.size !== undefined ? { capacityBytes: info.size } : {}) };
    case "qcow2":
    case "vhd":
    case "vhdx":
    case "vdi":
      return { ...base, info, ...(info.virtualSize !== undefined ? { capacityBytes: info.virtualSize } : {}) };
    case "ova":
      throw new Error("describe: an OVA is described by describeOva");
  }
}

/** Reads an OVA up to its boot disk's VMDK header, then closes it. */
async function describeOva(base: Base, info: ImageInfo, bytes: ByteSource): Promise<InspectedSource> {
  const ova = await openOva(bytes, { source: base.name });
  ova.disk.stream.destroy();
  const vmdk = ova.disk.info.format === "vmdk" ? ova.disk.info.vmdk : undefined;
  if (!vmdk) throw new Error(`${base.name}: openOva returned a disk that is not a VMDK`);
  const ovf = { ...(ova.ovf.osType !== undefined ? { osType: ova.ovf.osType } : {}), ...(ova.ovf.name !== undefined ? { name: ova.ovf.name } : {}) };
  return { ...base, info, disk: { vmdk, adapterType: ova.disk.adapterType }, ovf, capacityBytes: vmdk.capacityBytes };
}

/** Hashes the source's bytes (see sourceBytes). */
export async function digestSource(inspected: InspectedSource, algorithms: SourceDigestAlgorithm[], opts: { signal?: AbortSignal } = {}): Promise<SourceDigests & { sha256: string }> {
  const h = new Holdings();
  try {
    const { bytes } = await sourceBytes(inspected, h, opts.signal);
    const tap = hashTap(bytes, ["sha256", ...algorithms], inspected.name);
    for await (const _ of tap.bytes);
    return (await tap.digests) as SourceDigests & { sha256: string };
  } finally {
    await h.dispose();
  }
}

// ---- opening for publish --------------------------------------------------------------

/**
 * Opens the source for publishImage. Streams it (no temp file) unless qemu-img must
 * convert it; the digests are of the source bytes, computed as they are read.
 */
export async function openSource(inspected: InspectedSource, opts: OpenOptions): Promise<OpenedSource> {
  const h = new Holdings();
  const dispose = () => h.dispose();
  try {
    await checkFiles(inspected);
    const name = inspected.name;
    if (inspected.conversion) return { ...(await openConverted(inspected, opts, h)), dispose };
    const { bytes, size } = await sourceBytes(inspected, h, opts.signal);
    const tap = hashTap(bytes, opts.algorithms, name);
    const adapter = opts.adapterType ? { adapterType: opts.adapterType } : {};
    if (inspected.info.format === "vmdkDescriptor") {
      const flat = h.track(Readable.from(tap.bytes, { objectMode: false, highWaterMark: PREFIX_BYTES }));
      const publish = publishSourceOf({ info: inspected.info, stream: Readable.from([]) }, { name, ...adapter, flat: { stream: flat, length: size! } });
      return { publish, digests: tap.digests, dispose };
    }
    if (inspected.info.format === "ova") {
      const ova = await openOva(tap.bytes, { source: name, readToEnd: true });
      h.track(ova.disk.stream);
      const publish = publishSourceOf({ info: ova.disk.info, stream: ova.disk.stream }, { name, adapterType: opts.adapterType ?? ova.disk.adapterType });
      return { publish, digests: tap.digests, dispose };
    }
    if (size === undefined) {
      throw new UnsupportedImageError(name, "a download of unknown length (no Content-Length)", "vCenter needs an upload's length up front: serve the image with a Content-Length.");
    }
    const sniffed = await sniffImage(tap.bytes, { source: name, size });
    h.track(sniffed.stream);
    if (sniffed.info.format !== inspected.info.format) throw new SourceChangedError(name, [`format ${describeFormat(inspected.info)} → ${describeFormat(sniffed.info)}`]);
    if (sniffed.info.format === "raw") {
      const publish: PublishSource = { kind: "flat", name, stream: sniffed.stream, length: size, diskType: opts.diskType ?? "preallocated", adapterType: opts.adapterType ?? "lsiLogic", capacityBytes: size };
      return { publish, digests: tap.digests, dispose };
    }
    return { publish: publishSourceOf(sniffed, { name, ...adapter }), digests: tap.digests, dispose };
  } catch (err) {
    await h.dispose();
    throw err;
  }
}

/** qemu-img into a temp folder (a URL is downloaded there first), then the VMDK streamed as sparse. */
async function openConverted(inspected: InspectedSource, opts: OpenOptions, h: Holdings): Promise<Omit<OpenedSource, "dispose">> {
  const from = inspected.conversion!.from;
  const tool = opts.qemuImg ?? "qemu-img";
  await checkQemuImg(tool, inspected.name, from);
  const dir = await h.tempDir(opts.tmpDir);
  const { bytes } = await mainBytes(inspected, h, opts.signal);
  const tap = hashTap(bytes, opts.algorithms, inspected.name);
  let input: string;
  let converting: Promise<void>;
  if (inspected.fingerprint.kind === "file") {
    // qemu-img reads the file itself; the digest is a second read, alongside.
    input = inspected.fingerprint.files[0]!.path;
    const digesting = (async () => {
      for await (const _ of tap.bytes);
    })();
    converting = Promise.all([convertToVmdk({ tool, input, output: join(dir, "disk.vmdk"), format: from, adapterType: opts.adapterType, source: inspected.name, ...(opts.signal ? { signal: opts.signal } : {}) }), digesting]).then(() => undefined);
  } else {
    input = join(dir, `source.${from}`);
    converting = pipeline(Readable.from(tap.bytes), createWriteStream(input)).then(() =>
      convertToVmdk({ tool, input, output: join(dir, "disk.vmdk"), format: from, adapterType: opts.adapterType, source: inspected.name, ...(opts.signal ? { signal: opts.signal } : {}) }),
    );
  }
  try {
    await converting;
  } catch (err) {
    await h.dispose();
    throw err;
  }
  if (inspected.fingerprint.kind === "url") await rm(input, { force: true });
  const sniffed = await sniffImageFile(join(dir, "disk.vmdk"), { source: `${inspected.name} (converted by qemu-img)`, expect: ["vmdk"] });
  h.track(sniffed.stream);
  return { publish: publishSourceOf(sniffed, { name: inspected.name, ...(opts.adapterType ? { adapterType: opts.adapterType } : {}) }), digests: tap.digests };
}
