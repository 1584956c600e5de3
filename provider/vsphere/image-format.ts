// Image format detection from the bytes, never the file name: VMDK (sparse, stream-
// optimized, or a text descriptor whose extents are other files), OVA, ISO 9660, qcow2
// and the other formats qemu-img converts, and raw as a last guess.
//
// detectImage() is pure over a prefix of the file; it asks for more bytes when a header
// says its descriptor lies further on. image-stream.ts drives it over a stream.
import { ImageFormatError, UnsupportedImageError } from "./image-errors.js";
import { firstTarEntryName, USTAR_MAGIC_OFFSET } from "./tar.js";
import {
  decodeDescriptor,
  describeBytes,
  embeddedDescriptorRange,
  hasSparseMagic,
  looksLikeDescriptor,
  MAX_DESCRIPTOR_BYTES,
  parseDescriptor,
  parseSparseHeader,
  SECTOR,
  vmdkInfo,
  type VmdkInfo,
} from "./vmdk.js";

/** Bytes read before deciding: every magic and header detected here lies within them. */
export const PREFIX_BYTES = 64 * 1024;
/** ISO 9660: the primary volume descriptor is at sector 16 (of 2048 bytes); "CD001" follows its type byte. */
const ISO_PVD = 16 * 2048;

export type ImageFormat = "vmdk" | "vmdkDescriptor" | "ova" | "iso" | "qcow2" | "vhd" | "vhdx" | "vdi" | "raw";

export type ImageInfo = {
  /** Bytes in the whole source, when known (a file's size, a Content-Length). */
  size: number | undefined;
} & (
  | {
      /** A single-file VMDK (monolithicSparse or streamOptimized): the file is the disk. */
      format: "vmdk";
      vmdk: VmdkInfo;
    }
  | {
      /** A text descriptor (monolithicFlat, twoGbMaxExtentFlat, vmfs): the data is in its extent files. */
      format: "vmdkDescriptor";
      vmdk: VmdkInfo;
    }
  | {
      /** A tar whose first member is the .ovf (open it with openOva). */
      format: "ova";
      ovfName: string;
    }
  | {
      format: "iso";
      volumeId: string;
      /** Volume space size × logical block size, from the primary volume descriptor. */
      volumeBytes: number;
    }
  | {
      /** A format qemu-img converts to VMDK ("vpc" is qemu's name for VHD). */
      format: "qcow2" | "vhd" | "vhdx" | "vdi";
      qemuFormat: "qcow2" | "vpc" | "vhdx" | "vdi";
      virtualSize: number | undefined;
    }
  | {
      /** Nothing known: a raw disk is a guess, made only for a size that is whole sectors. */
      format: "raw";
      guess: true;
      /** What suggests a disk: an MBR boot signature, a GPT header, or nothing. */
      evidence: "mbr" | "gpt" | "none";
    }
);

export interface DetectOptions {
  /** Names the source in errors: a path or URL. */
  source: string;
  /** The source's total size when known. */
  size?: number;
  /** The prefix is the whole source (it ended before the prefix was full). */
  complete: boolean;
}

/** Either what the bytes are, or how many bytes from the start are needed to tell. */
export type Detection = { info: ImageInfo } | { needBytes: number };

const at = (b: Buffer, off: number, s: string) => b.length >= off + s.length && b.subarray(off, off + s.length).toString("latin1") === s;

/** Compressed or container formats that are not disks, with what to do about them. */
const NOT_DISKS: Array<{ magic: string; offset?: number; what: string; hint: string }> = [
  { magic: "\x1f\x8b\x08", what: "gzip-compressed data", hint: "Decompress it first (gunzip), or serve the uncompressed image." },
  { magic: "\xfd7zXZ\x00", what: "xz-compressed data", hint: "Decompress it first (unxz)." },
  { magic: "BZh", what: "bzip2-compressed data", hint: "Decompress it first (bunzip2)." },
  { magic: "\x28\xb5\x2f\xfd", what: "zstd-compressed data", hint: "Decompress it first (unzstd)." },
  { magic: "PK\x03\x04", what: "a zip archive", hint: "Unpack it and give the disk image (.vmdk, .ova or .iso) inside." },
  { magic: "COWD", what: "an ESX 2.x COW sparse disk", hint: "Convert it with `qemu-img convert -O vmdk -o subformat=streamOptimized`." },
];

/** Tells what a prefix of an image is. Throws the typed image errors for bad bytes. */
export function detectImage(prefix: Buffer, opts: DetectOptions): Detection {
  const { source } = opts;
  const size = opts.size ?? (opts.complete ? prefix.length : undefined);
  const done = (info: DistributiveOmit<ImageInfo, "size">): Detection => ({ info: { ...info, size } as ImageInfo });
  if (size === 0 || prefix.length === 0) throw new ImageFormatError(source, "empty", "an image", "0 bytes");

  if (hasSparseMagic(prefix)) return detectSparse(prefix, opts, size);
  for (const n of NOT_DISKS) if (at(prefix, n.offset ?? 0, n.magic)) throw new UnsupportedImageError(source, n.what, n.hint);

  if (at(prefix, 0, "QFI\xfb")) {
    if (prefix.length < 32) throw new ImageFormatError(source, "truncated", "a 32-byte qcow2 header", `${prefix.length} bytes`);
    return done({ format: "qcow2", qemuFormat: "qcow2", virtualSize: Number(prefix.readBigUInt64BE(24)) });
  }
  if (at(prefix, 0, "vhdxfile")) return done({ format: "vhdx", qemuFormat: "vhdx", virtualSize: undefined });
  if (at(prefix, 0, "conectix")) return done({ format: "vhd", qemuFormat: "vpc", virtualSize: prefix.length >= 56 ? Number(prefix.readBigUInt64BE(48)) : undefined });
  if (prefix.length >= 68 && prefix.readUInt32LE(64) === 0xbeda107f) return done({ format: "vdi", qemuFormat: "vdi", virtualSize: undefined });

  if (at(prefix, USTAR_MAGIC_OFFSET, "ustar")) {
    const name = firstTarEntryName(prefix, source);
    if (name === undefined) {
      if (prefix.length < PREFIX_BYTES && !opts.complete) return { needBytes: PREFIX_BYTES };
      throw new ImageFormatError(source, "truncated", "a tar header naming the first member", `${prefix.length} bytes`);
    }
    if (!/\.ovf$/i.test(name)) {
      throw new UnsupportedImageError(source, `a tar archive whose first member is "${name}"`, "An OVA's first member is its .ovf descriptor: repack it with the .ovf first (ovftool does), or give the disk image itself.");
    }
    return done({ format: "ova", ovfName: name });
  }

  if (at(prefix, ISO_PVD + 1, "CD001")) return detectIso(prefix, opts, size);
  if (!opts.complete && prefix.length < ISO_PVD + 6 && prefix.length < PREFIX_BYTES) return { needBytes: PREFIX_BYTES };

  const text = textPrefix(prefix);
  if (text !== undefined && looksLikeDescriptor(text)) {
    if (!opts.complete) {
      if (prefix.length >= MAX_DESCRIPTOR_BYTES) {
        throw new ImageFormatError(source, "tooLarge", `a VMDK descriptor of at most ${MAX_DESCRIPTOR_BYTES} bytes`, "more text than that");
      }
      return { needBytes: Math.min(prefix.length * 4, MAX_DESCRIPTOR_BYTES) };
    }
    const descriptor = parseDescriptor(text, source);
    return done({ format: "vmdkDescriptor", vmdk: vmdkInfo(descriptor, undefined, source) });
  }
  if (at(prefix, 0, "<?xml") && /<([A-Za-z0-9_]+:)?Envelope[\s>]/.test(text ?? "")) {
    throw new UnsupportedImageError(source, "a bare OVF descriptor (.ovf)", "Give the .ova (the .ovf and its disks in one tar), or the disk image the .ovf names.");
  }
  // A VMDK whose magic got damaged still has its descriptor at sector 1: say so rather than guess raw.
  if (prefix.length > SECTOR && looksLikeDescriptor(decodeDescriptor(prefix.subarray(SECTOR, Math.min(prefix.length, 64 * SECTOR))))) {
    throw new ImageFormatError(source, "badMagic", 'the VMDK sparse magic "KDMV" before the descriptor at sector 1', describeBytes(prefix.subarray(0, 4)));
  }

  if (size !== undefined && size % SECTOR !== 0) {
    throw new ImageFormatError(
      source,
      "notSectorAligned",
      "VMDK, OVA, ISO, qcow2, VHD(X), VDI, or a raw disk whose size is a multiple of 512",
      `${size} bytes starting with ${describeBytes(prefix.subarray(0, 8))}`,
    );
  }
  const evidence = at(prefix, SECTOR, "EFI PART") ? "gpt" : prefix.length >= SECTOR && prefix[510] === 0x55 && prefix[511] === 0xaa ? "mbr" : "none";
  return done({ format: "raw", guess: true, evidence });
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function detectSparse(prefix: Buffer, opts: DetectOptions, size: number | undefined): Detection {
  const { source } = opts;
  if (prefix.length < SECTOR && !opts.complete) return { needBytes: PREFIX_BYTES };
  const header = parseSparseHeader(prefix, source);
  const range = embeddedDescriptorRange(header, source);
  if (!range) {
    throw new ImageFormatError(source, "corrupt", "a sparse VMDK with an embedded descriptor", "descriptorOffset 0 (an extent of a multi-file disk: give its descriptor)");
  }
  if (size !== undefined && size < range.end) {
    throw new ImageFormatError(source, "truncated", `a descriptor ending at byte ${range.end}`, `a file of ${size} bytes`);
  }
  if (prefix.length < range.end) {
    if (opts.complete) throw new ImageFormatError(source, "truncated", `a descriptor ending at byte ${range.end}`, `${prefix.length} bytes`);
    return { needBytes: range.end };
  }
  const text = decodeDescriptor(prefix.subarray(range.start, range.end));
  if (!looksLikeDescriptor(text)) {
    throw new ImageFormatError(
      source,
      "corrupt",
      `descriptor text at sector ${header.descriptorOffsetSectors} (the header's descriptorOffset)`,
      describeBytes(prefix.subarray(range.start, range.start + 16)),
    );
  }
  const vmdk = vmdkInfo(parseDescriptor(text, source), header, source);
  const minSize = header.overheadSectors * SECTOR;
  if (size !== undefined && size < minSize) {
    throw new ImageFormatError(source, "truncated", `at least the ${minSize} bytes of metadata its header declares`, `${size} bytes`);
  }
  return { info: { format: "vmdk", vmdk, size } };
}

function detectIso(prefix: Buffer, opts: DetectOptions, size: number | undefined): Detection {
  const pvd = prefix.subarray(ISO_PVD, ISO_PVD + 2048);
  if (pvd.length < 2048) {
    if (!opts.complete) return { needBytes: ISO_PVD + 2048 };
    throw new ImageFormatError(opts.source, "truncated", "a 2048-byte ISO 9660 volume descriptor at byte 32768", `${pvd.length} bytes`);
  }
  if (pvd[0] !== 1) {
    throw new ImageFormatError(opts.source, "corrupt", "an ISO 9660 primary volume descriptor (type 1) at sector 16", `type ${pvd[0]}`);
  }
  const volumeBytes = pvd.readUInt32LE(80) * pvd.readUInt16LE(128);
  if (size !== undefined && size < volumeBytes) {
    throw new ImageFormatError(opts.source, "truncated", `the ${volumeBytes} bytes its volume descriptor declares`, `${size} bytes`);
  }
  return { info: { format: "iso", volumeId: pvd.subarray(40, 72).toString("latin1").trim(), volumeBytes, size } };
}

/**
 * The prefix as text when it is text (mostly printable), else undefined. NULs may follow
 * the text but not interrupt it: `qemu-img convert` pads a descriptor file to a whole
 * sector with them.
 */
function textPrefix(prefix: Buffer): string | undefined {
  const nul = prefix.indexOf(0);
  if (nul === 0) return undefined;
  if (nul > 0) {
    for (let i = nul; i < prefix.length; i++) if (prefix[i] !== 0) return undefined;
    prefix = prefix.subarray(0, nul);
  }
  const sample = prefix.subarray(0, 4096);
  let control = 0;
  for (const x of sample) if (x < 0x09 || (x > 0x0d && x < 0x20)) control++;
  return control > sample.length / 100 ? undefined : decodeDescriptor(prefix);
}

/**
 * Checks the total byte count once a stream of unknown size has ended: the checks that
 * detectImage() makes up front when it knows the size.
 */
export function checkTotalSize(info: ImageInfo, total: number, source: string): void {
  if (total === 0) throw new ImageFormatError(source, "empty", "an image", "0 bytes");
  if (info.size !== undefined && total !== info.size) {
    throw new ImageFormatError(source, "truncated", `${info.size} bytes (its declared size)`, `${total} bytes`);
  }
  switch (info.format) {
    case "raw":
      if (total % SECTOR !== 0) {
        throw new ImageFormatError(source, "notSectorAligned", "a raw disk whose size is a multiple of 512", `${total} bytes`);
      }
      break;
    case "vmdk": {
      const min = (info.vmdk.header?.overheadSectors ?? 0) * SECTOR;
      if (total < min) throw new ImageFormatError(source, "truncated", `at least the ${min} bytes of metadata its header declares`, `${total} bytes`);
      break;
    }
    case "iso":
      if (total < info.volumeBytes) throw new ImageFormatError(source, "truncated", `the ${info.volumeBytes} bytes its volume descriptor declares`, `${total} bytes`);
      break;
  }
}

/** A name for the format, for messages and outputs (e.g. "VMDK streamOptimized"). */
export function describeFormat(info: ImageInfo): string {
  switch (info.format) {
    case "vmdk":
    case "vmdkDescriptor":
      return `VMDK ${info.vmdk.createType}`;
    case "ova":
      return "OVA";
    case "iso":
      return "ISO 9660";
    case "raw":
      return "raw disk (a guess)";
    default:
      return info.format.toUpperCase();
  }
}

