// VMDK reading: the sparse extent header (monolithicSparse, streamOptimized), the text
// descriptor (embedded in a sparse file or standalone beside flat extents), and what they
// mean as Nova's image properties (vmware_disktype, vmware_adaptertype).
//
// Layout per VMware's "Virtual Disk Format 5.0": a sparse extent starts with a 512-byte
// little-endian header whose magic is "KDMV"; its descriptor (when embedded) lies at
// descriptorOffset sectors for descriptorSize sectors, NUL-padded text.
import { z } from "zod";
import { ImageFormatError, UnsupportedImageError } from "./image-errors.js";

export const SECTOR = 512;
/** "KDMV" read as a little-endian uint32. */
export const SPARSE_MAGIC = 0x564d444b;
/** Header flags (the format spec's names). */
export const SPARSE_FLAGS = {
  validNewlineTest: 1 << 0,
  redundantGrainTable: 1 << 1,
  zeroedGrainTableEntries: 1 << 2,
  compressedGrains: 1 << 16,
  markers: 1 << 17,
} as const;
/** gdOffset in a streamOptimized header whose grain directory is in the footer. */
const GD_AT_END = 0xffffffffffffffffn;
/** No valid descriptor is near this big; a larger size is a corrupt header, not a reason to buffer. */
export const MAX_DESCRIPTOR_BYTES = 1 << 20;

export interface SparseExtentHeader {
  version: number;
  flags: number;
  /** Virtual size in sectors. */
  capacitySectors: number;
  /** Sectors per grain (a power of two, at least 8). */
  grainSectors: number;
  descriptorOffsetSectors: number;
  descriptorSizeSectors: number;
  numGTEsPerGT: number;
  rgdOffsetSectors: number;
  /** undefined when the grain directory is in the footer (streamOptimized written by VMware). */
  gdOffsetSectors: number | undefined;
  /** Sectors of metadata before the first grain. */
  overheadSectors: number;
  uncleanShutdown: boolean;
  /** 0 none, 1 deflate (RFC 1951, in zlib framing). */
  compressAlgorithm: number;
  compressed: boolean;
  hasMarkers: boolean;
}

export type ExtentAccess = "RW" | "RDONLY" | "NOACCESS";
export interface VmdkExtent {
  access: ExtentAccess;
  sizeSectors: number;
  /** FLAT, SPARSE, ZERO, VMFS, VMFSSPARSE, VMFSRDM, VMFSRAW, SESPARSE, VSANSPARSE… */
  type: string;
  /** As the descriptor writes it (relative to the descriptor); absent for ZERO. */
  fileName: string | undefined;
  /** Sector offset into the extent file (FLAT extents). */
  offsetSectors: number;
}

export interface VmdkDescriptor {
  version: number | undefined;
  /** The content id, as 8 lowercase hex digits (see contentId). */
  cid: string | undefined;
  parentCID: string | undefined;
  createType: string;
  extents: VmdkExtent[];
  /** Every `ddb.*` entry, keys without the "ddb." prefix (e.g. "adapterType", "geometry.heads"). */
  ddb: Record<string, string>;
  /** Every other key = value line (encoding, parentFileNameHint, isNativeSnapshot…). */
  fields: Record<string, string>;
}

/** vmware_disktype values (Nova's constants). */
export const DISK_TYPES = ["sparse", "thin", "preallocated", "streamOptimized"] as const;
export const diskTypeSchema = z.enum(DISK_TYPES);
export type DiskType = z.infer<typeof diskTypeSchema>;
/** vmware_adaptertype values: the API's VirtualDiskAdapterType names plus Nova's two extra SCSI controllers. */
export const ADAPTER_TYPES = ["ide", "lsiLogic", "busLogic", "lsiLogicsas", "paraVirtual"] as const;
export const adapterTypeSchema = z.enum(ADAPTER_TYPES);
export type AdapterType = z.infer<typeof adapterTypeSchema>;
/** What a descriptor's ddb.adapterType can say. */
export type DescriptorAdapterType = "ide" | "buslogic" | "lsilogic" | "legacyESX";

/** A VMDK as Nova's image properties see it. */
export interface VmdkInfo {
  createType: string;
  diskType: DiskType;
  /** From ddb.adapterType, or lsiLogic (Nova's default) when the descriptor does not say. */
  adapterType: AdapterType;
  /** ddb.adapterType as written, undefined when absent. */
  descriptorAdapterType: DescriptorAdapterType | undefined;
  capacityBytes: number;
  /** ddb.virtualHWVersion. */
  hardwareVersion: number | undefined;
  /** Present for monolithicSparse and streamOptimized. */
  header: SparseExtentHeader | undefined;
  descriptor: VmdkDescriptor;
}

const u64 = (b: Buffer, off: number, source: string, field: string): number => {
  const v = b.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ImageFormatError(source, "corrupt", `a sector count for ${field}`, `0x${v.toString(16)}`);
  }
  return Number(v);
};

/** Whether `b` starts with a sparse extent header's magic. */
export function hasSparseMagic(b: Buffer): boolean {
  return b.length >= 4 && b.readUInt32LE(0) === SPARSE_MAGIC;
}

/** Parses and checks the 512-byte sparse extent header at the start of `b`. */
export function parseSparseHeader(b: Buffer, source: string): SparseExtentHeader {
  if (b.length < SECTOR) {
    throw new ImageFormatError(source, "truncated", "a 512-byte VMDK sparse extent header", `${b.length} bytes`);
  }
  if (!hasSparseMagic(b)) {
    throw new ImageFormatError(source, "badMagic", 'the VMDK sparse magic "KDMV"', describeBytes(b.subarray(0, 4)));
  }
  const version = b.readUInt32LE(4);
  const flags = b.readUInt32LE(8);
  const gd = b.readBigUInt64LE(56);
  const header: SparseExtentHeader = {
    version,
    flags,
    capacitySectors: u64(b, 12, source, "capacity"),
    grainSectors: u64(b, 20, source, "grainSize"),
    descriptorOffsetSectors: u64(b, 28, source, "descriptorOffset"),
    descriptorSizeSectors: u64(b, 36, source, "descriptorSize"),
    numGTEsPerGT: b.readUInt32LE(44),
    rgdOffsetSectors: u64(b, 48, source, "rgdOffset"),
    gdOffsetSectors: gd === GD_AT_END ? undefined : u64(b, 56, source, "gdOffset"),
    overheadSectors: u64(b, 64, source, "overhead"),
    uncleanShutdown: b[72] !== 0,
    compressAlgorithm: b.readUInt16LE(77),
    compressed: (flags & SPARSE_FLAGS.compressedGrains) !== 0,
    hasMarkers: (flags & SPARSE_FLAGS.markers) !== 0,
  };
  const bad = (expected: string, found: string) => new ImageFormatError(source, "corrupt", `a sparse header with ${expected}`, found);
  if (version < 1 || version > 3) throw bad("version 1, 2 or 3", `version ${version}`);
  // The newline test catches a file that went through a text-mode (CRLF) transfer.
  if (flags & SPARSE_FLAGS.validNewlineTest && (b[73] !== 0x0a || b[74] !== 0x20 || b[75] !== 0x0d || b[76] !== 0x0a)) {
    throw bad("the newline test bytes \\n ' ' \\r \\n", describeBytes(b.subarray(73, 77)) + " (was the file copied in text mode?)");
  }
  if (header.capacitySectors === 0) throw bad("a capacity above 0", "capacity 0");
  const g = header.grainSectors;
  if (g < 8 || (g & (g - 1)) !== 0) throw bad("a grain size that is a power of two of at least 8 sectors", `${g} sectors`);
  if (header.compressed && header.compressAlgorithm !== 1) throw bad("compressAlgorithm 1 (deflate)", `compressAlgorithm ${header.compressAlgorithm}`);
  return header;
}

/** The byte range of the embedded descriptor, checked against the header; undefined when there is none. */
export function embeddedDescriptorRange(h: SparseExtentHeader, source: string): { start: number; end: number } | undefined {
  if (h.descriptorOffsetSectors === 0 && h.descriptorSizeSectors === 0) return undefined;
  const start = h.descriptorOffsetSectors * SECTOR;
  const end = start + h.descriptorSizeSectors * SECTOR;
  // The descriptor is metadata: it sits after the header and before the first grain.
  if (h.descriptorOffsetSectors < 1 || h.descriptorSizeSectors === 0 || (h.overheadSectors > 0 && end > h.overheadSectors * SECTOR)) {
    throw new ImageFormatError(
      source,
      "corrupt",
      `an embedded descriptor between sector 1 and the grains (overhead ${h.overheadSectors} sectors)`,
      `descriptorOffset ${h.descriptorOffsetSectors}, descriptorSize ${h.descriptorSizeSectors} sectors`,
    );
  }
  if (end - start > MAX_DESCRIPTOR_BYTES) {
    throw new ImageFormatError(source, "tooLarge", `a descriptor of at most ${MAX_DESCRIPTOR_BYTES} bytes`, `${end - start} bytes`);
  }
  return { start, end };
}

/** Decodes descriptor bytes: text up to the first NUL, in its `encoding` (UTF-8 unless it says otherwise). */
export function decodeDescriptor(b: Buffer): string {
  const nul = b.indexOf(0);
  const bytes = nul < 0 ? b : b.subarray(0, nul);
  const latin = bytes.toString("latin1");
  const enc = /^\s*encoding\s*=\s*"?([^"\r\n]*)"?/im.exec(latin)?.[1]?.trim().toLowerCase();
  return enc === undefined || enc === "utf-8" || enc === "utf8" ? bytes.toString("utf8") : latin;
}

/** Whether text looks like a VMDK descriptor (its createType line is what every one has). */
export function looksLikeDescriptor(text: string): boolean {
  return /^\s*createType\s*=/m.test(text);
}

const EXTENT_LINE = /^(RW|RDONLY|NOACCESS)\s+(\d+)\s+([A-Z]+)(?:\s+"((?:[^"\\]|\\.)*)"(?:\s+(\d+))?)?\s*$/;

/** Parses descriptor text. */
export function parseDescriptor(text: string, source: string): VmdkDescriptor {
  const fields: Record<string, string> = {};
  const ddb: Record<string, string> = {};
  const extents: VmdkExtent[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const ext = EXTENT_LINE.exec(line);
    if (ext) {
      extents.push({
        access: ext[1] as ExtentAccess,
        sizeSectors: Number(ext[2]),
        type: ext[3]!,
        fileName: ext[4],
        offsetSectors: ext[5] === undefined ? 0 : Number(ext[5]),
      });
      continue;
    }
    const kv = /^([A-Za-z0-9_.]+)\s*=\s*(.*)$/.exec(line);
    if (!kv) throw new ImageFormatError(source, "corrupt", "descriptor lines of key = value or extents", JSON.stringify(line.slice(0, 80)));
    const value = kv[2]!.replace(/^"(.*)"$/, "$1");
    if (kv[1]!.startsWith("ddb.")) ddb[kv[1]!.slice(4)] = value;
    else fields[kv[1]!] = value;
  }
  const createType = fields.createType;
  if (!createType) throw new ImageFormatError(source, "corrupt", "a descriptor with a createType line", "none");
  if (extents.length === 0) throw new ImageFormatError(source, "corrupt", "a descriptor with at least one extent line", "none");
  const { createType: _c, version, CID, parentCID, ...rest } = fields;
  return {
    version: version === undefined ? undefined : Number(version),
    cid: contentId(CID),
    parentCID: contentId(parentCID),
    createType,
    extents,
    ddb,
    fields: rest,
  };
}

/**
 * A content id (CID) is a 32-bit number written in hex, with or without leading
 * zeros (qemu-img writes "31b227c", VMware "031b227c"): 8 lowercase digits, so ids
 * compare as text. Anything that is not hex is kept as written.
 */
function contentId(text: string | undefined): string | undefined {
  if (text === undefined || !/^[0-9a-fA-F]{1,8}$/.test(text)) return text;
  return text.toLowerCase().padStart(8, "0");
}

const FLAT_CREATE_TYPES = new Set(["monolithicFlat", "twoGbMaxExtentFlat", "vmfs", "vmfsThin", "vmfsPreallocated", "vmfsEagerZeroedThick"]);
const UNSUPPORTED_CREATE_TYPES: Record<string, string> = {
  twoGbMaxExtentSparse: "a sparse disk split into 2 GB files",
  vmfsSparse: "a VMFS delta (snapshot) disk",
  seSparse: "a space-efficient sparse (snapshot) disk",
  vsanSparse: "a vSAN delta disk",
  fullDevice: "a disk backed by a physical device",
  partitionedDevice: "a disk backed by physical partitions",
  vmfsRaw: "a raw device disk",
  vmfsRawDeviceMap: "a raw device mapping",
  vmfsPassthroughRawDeviceMap: "a pass-through raw device mapping",
  custom: "a custom disk",
};
const CONVERT_HINT = "Convert it to one file first, e.g. `qemu-img convert -O vmdk -o subformat=streamOptimized <in> <out>.vmdk`";

/**
 * vmware_disktype from the bytes. Nova never reads the file, so this is our mapping:
 * - monolithicSparse → sparse, streamOptimized → streamOptimized (the header's flags decide).
 * - Flat descriptors (monolithicFlat, twoGbMaxExtentFlat, vmfs…) → preallocated: the seed says a
 *   VMFS thin disk exported off VMFS "becomes a preallocated flat disk", and a flat descriptor
 *   cannot say otherwise. The exceptions are a VMFS descriptor copied verbatim that says
 *   `ddb.thinProvisioned = "1"`, and the old `vmfsThin` createType: those are thin.
 *   thin and preallocated upload the same way (the flat bytes), so check() accepts either for
 *   any flat file.
 */
export function diskTypeOf(createType: string, ddb: Record<string, string>, source: string): DiskType {
  if (createType === "monolithicSparse") return "sparse";
  if (createType === "streamOptimized") return "streamOptimized";
  if (FLAT_CREATE_TYPES.has(createType)) return createType === "vmfsThin" || ddb.thinProvisioned === "1" ? "thin" : "preallocated";
  const what = UNSUPPORTED_CREATE_TYPES[createType];
  throw new UnsupportedImageError(source, `a VMDK of createType "${createType}"${what ? ` (${what})` : ""}`, CONVERT_HINT);
}

/**
 * vmware_adaptertype from ddb.adapterType. legacyESX (ESX 2.x SCSI disks) has no API
 * name; it is SCSI, so it reads as lsiLogic (Nova's default SCSI type) and check()
 * accepts any SCSI type on it.
 */
export function adapterTypeOf(ddbAdapter: string | undefined, source: string): { adapterType: AdapterType; descriptorAdapterType: DescriptorAdapterType | undefined } {
  switch (ddbAdapter) {
    case undefined:
      return { adapterType: "lsiLogic", descriptorAdapterType: undefined };
    case "ide":
      return { adapterType: "ide", descriptorAdapterType: "ide" };
    case "buslogic":
      return { adapterType: "busLogic", descriptorAdapterType: "buslogic" };
    case "lsilogic":
      return { adapterType: "lsiLogic", descriptorAdapterType: "lsilogic" };
    case "legacyESX":
      return { adapterType: "lsiLogic", descriptorAdapterType: "legacyESX" };
    default:
      throw new ImageFormatError(source, "corrupt", 'ddb.adapterType "ide", "buslogic", "lsilogic" or "legacyESX"', JSON.stringify(ddbAdapter));
  }
}

/** Reads a descriptor (and the sparse header, when there is one) as Nova's image properties. */
export function vmdkInfo(descriptor: VmdkDescriptor, header: SparseExtentHeader | undefined, source: string): VmdkInfo {
  if (descriptor.parentCID !== undefined && descriptor.parentCID.toLowerCase() !== "ffffffff") {
    throw new UnsupportedImageError(source, `a VMDK delta disk (parentCID ${descriptor.parentCID}; it needs its parent disk)`, CONVERT_HINT);
  }
  let createType = descriptor.createType;
  const extentSectors = descriptor.extents.reduce((n, e) => n + e.sizeSectors, 0);
  if (header) {
    // A sparse file's own header decides, and its descriptor has to agree with it.
    const headerType = header.compressed ? "streamOptimized" : "monolithicSparse";
    if (createType !== headerType) {
      throw new ImageFormatError(
        source,
        "corrupt",
        `createType "${headerType}" in the embedded descriptor (the header's flags say ${header.compressed ? "compressed grains" : "uncompressed grains"})`,
        `createType "${createType}"`,
      );
    }
    if (extentSectors !== header.capacitySectors) {
      throw new ImageFormatError(source, "corrupt", `extents totalling the header's capacity of ${header.capacitySectors} sectors`, `${extentSectors} sectors`);
    }
    createType = headerType;
  } else if (createType === "monolithicSparse" || createType === "streamOptimized") {
    throw new ImageFormatError(source, "corrupt", `a sparse extent header before a ${createType} descriptor`, "a standalone descriptor");
  }
  const diskType = diskTypeOf(createType, descriptor.ddb, source);
  const hw = descriptor.ddb.virtualHWVersion;
  return {
    createType,
    diskType,
    ...adapterTypeOf(descriptor.ddb.adapterType, source),
    capacityBytes: (header?.capacitySectors ?? extentSectors) * SECTOR,
    hardwareVersion: hw === undefined || !/^\d+$/.test(hw) ? undefined : Number(hw),
    header,
    descriptor,
  };
}

/** A declared property that the file contradicts. */
export interface Contradiction {
  property: "diskType" | "adapterType";
  declared: string;
  detected: string;
  message: string;
}

const SCSI: readonly AdapterType[] = ["lsiLogic", "busLogic", "lsiLogicsas", "paraVirtual"];
/** The declared adapter types each descriptor value allows. */
const ADAPTERS_ALLOWED: Record<DescriptorAdapterType, readonly AdapterType[]> = {
  ide: ["ide"],
  buslogic: ["busLogic"],
  // vSphere writes "lsilogic" for LSI Logic SAS and PVSCSI disks too: a descriptor has no word for them.
  lsilogic: ["lsiLogic", "lsiLogicsas", "paraVirtual"],
  legacyESX: SCSI,
};
const DISK_TYPES_ALLOWED: Record<DiskType, readonly DiskType[]> = {
  sparse: ["sparse"],
  streamOptimized: ["streamOptimized"],
  // Both upload the flat bytes; they differ only in how vCenter allocates the cached copy.
  thin: ["thin", "preallocated"],
  preallocated: ["thin", "preallocated"],
};

/** Checks declared diskType / adapterType against what the file says; [] when they agree. */
export function contradictions(info: Pick<VmdkInfo, "createType" | "diskType" | "descriptorAdapterType">, declared: { diskType?: DiskType; adapterType?: AdapterType }): Contradiction[] {
  const out: Contradiction[] = [];
  if (declared.diskType !== undefined && !DISK_TYPES_ALLOWED[info.diskType].includes(declared.diskType)) {
    out.push({
      property: "diskType",
      declared: declared.diskType,
      detected: info.diskType,
      message:
        `diskType "${declared.diskType}" contradicts the file, a ${info.createType} VMDK (diskType "${info.diskType}"): ` +
        `each disk type is uploaded a different way, so the cached disk would be unreadable. Omit diskType or set it to "${info.diskType}"`,
    });
  }
  const file = info.descriptorAdapterType;
  if (declared.adapterType !== undefined && file !== undefined && !ADAPTERS_ALLOWED[file].includes(declared.adapterType)) {
    const ideVsScsi = (file === "ide") !== (declared.adapterType === "ide");
    const why = ideVsScsi
      ? `an ${file === "ide" ? "IDE disk cannot boot from a SCSI controller" : "SCSI disk cannot boot from an IDE controller"} (the boot failure the vSphere docs warn about)`
      : `the disk was made for a ${file === "buslogic" ? "BusLogic" : "LSI Logic"} controller, and a guest with only that driver does not find its disk on another`;
    out.push({
      property: "adapterType",
      declared: declared.adapterType,
      detected: file,
      message: `adapterType "${declared.adapterType}" contradicts the file's ddb.adapterType "${file}": ${why}. Omit adapterType or set it to one of ${ADAPTERS_ALLOWED[file].map((a) => `"${a}"`).join(", ")}`,
    });
  }
  return out;
}

/** Bytes as hex and printable text, for error messages. */
export function describeBytes(b: Buffer): string {
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join(" ");
  const text = [...b].map((x) => (x >= 0x20 && x < 0x7f ? String.fromCharCode(x) : ".")).join("");
  return b.length ? `bytes ${hex} ("${text}")` : "no bytes";
}
