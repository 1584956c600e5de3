// OVA: a tar whose first member is the .ovf. Read the .ovf (and the .mf manifest when it
// comes before the disk, as ovftool writes it), find the disk it names, and hand that
// member on as a stream: nothing is unpacked to disk, nothing but the .ovf is buffered.
import { XMLParser } from "fast-xml-parser";
import { ByteReader, type ByteSource } from "./byte-reader.js";
import { ImageFormatError, UnsupportedImageError } from "./image-errors.js";
import { sniffImage, type SniffedImage } from "./image-stream.js";
import { tarEntries, type TarEntry } from "./tar.js";
import type { AdapterType, DiskType } from "./vmdk.js";

/** A .ovf larger than this is not a descriptor (real ones are tens of KB, a long EULA included). */
const MAX_OVF_BYTES = 16 << 20;

export interface OvfFile {
  id: string;
  href: string;
  size: number | undefined;
  /** ovf:compression ("gzip"): the member is compressed as a whole. */
  compression: string | undefined;
  /** ovf:chunkSize: the file is split into numbered members. */
  chunkSize: number | undefined;
}

export interface OvfController {
  /** CIM ResourceType: 5 IDE, 6 parallel SCSI, 20 other storage (SATA, NVMe). */
  resourceType: number;
  subType: string | undefined;
  /** Nova's adapter type, when the controller is one Nova knows. */
  adapterType: AdapterType | undefined;
}

export interface OvfDisk {
  diskId: string;
  file: OvfFile | undefined;
  capacityBytes: number | undefined;
  /** ovf:format, a URL whose fragment names the VMDK subformat. */
  format: string | undefined;
  diskType: DiskType | undefined;
  controller: OvfController | undefined;
}

export interface OvfDescriptor {
  name: string | undefined;
  /** vmw:osType on the OperatingSystemSection (a vSphere guest id), when present. */
  osType: string | undefined;
  /** ovf:id there: the CIM operating system number. */
  osCimId: string | undefined;
  /** vssd:VirtualSystemType, e.g. "vmx-13". */
  hardwareFamily: string | undefined;
  files: OvfFile[];
  /** In DiskSection order; the first is the boot disk. */
  disks: OvfDisk[];
}

type XmlNode = Record<string, unknown>;
const ARRAYS = new Set(["File", "Disk", "Item", "StorageItem", "VirtualSystem", "VirtualHardwareSection"]);
const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@",
  removeNSPrefix: true,
  parseTagValue: false,
  parseAttributeValue: false,
  isArray: (name) => ARRAYS.has(name),
});

const node = (v: unknown): XmlNode => (typeof v === "object" && v !== null && !Array.isArray(v) ? (v as XmlNode) : {});
const nodes = (v: unknown): XmlNode[] => (Array.isArray(v) ? v.map(node) : v === undefined ? [] : [node(v)]);
const text = (v: unknown): string | undefined => {
  if (typeof v === "string") return v.trim();
  const t = node(v)["#text"];
  return typeof t === "string" ? t.trim() : undefined;
};
const attr = (n: XmlNode, name: string): string | undefined => {
  const v = n[`@${name}`];
  return typeof v === "string" ? v : undefined;
};
const num = (s: string | undefined) => (s !== undefined && /^\d+$/.test(s) ? Number(s) : undefined);

/** "byte * 2^30", "byte * 10^9", "byte", "GB"…: the multiplier, or undefined if unknown. */
export function allocationUnits(units: string | undefined): number | undefined {
  if (units === undefined) return 1;
  const u = units.replace(/\s+/g, "");
  const pow = /^byte\*(2|10)\^(\d+)$/i.exec(u);
  if (pow) return Number(pow[1]) ** Number(pow[2]);
  const legacy: Record<string, number> = { byte: 1, kb: 2 ** 10, mb: 2 ** 20, gb: 2 ** 30, tb: 2 ** 40 };
  return legacy[u.toLowerCase()];
}

const SCSI_SUBTYPES: Record<string, AdapterType> = {
  lsilogic: "lsiLogic",
  buslogic: "busLogic",
  lsilogicsas: "lsiLogicsas",
  virtualscsi: "paraVirtual",
};

function controllerOf(item: XmlNode): OvfController {
  const resourceType = num(text(item.ResourceType)) ?? 0;
  const subType = text(item.ResourceSubType);
  const adapterType = resourceType === 5 ? "ide" : resourceType === 6 ? SCSI_SUBTYPES[(subType ?? "lsilogic").toLowerCase()] : undefined;
  return { resourceType, subType, adapterType };
}

function diskTypeOfFormat(format: string | undefined): DiskType | undefined {
  const fragment = format?.split("#")[1]?.toLowerCase();
  if (fragment === "streamoptimized" || fragment === "compressed") return "streamOptimized";
  if (fragment === "sparse" || fragment === "monolithicsparse") return "sparse";
  return undefined;
}

/** Parses an OVF descriptor (OVF 1.x and 2.x envelopes). */
export function parseOvf(xml: string, source: string): OvfDescriptor {
  let doc: XmlNode;
  try {
    doc = node(parser.parse(xml));
  } catch (err) {
    throw new ImageFormatError(source, "corrupt", "an OVF descriptor (XML)", `unparsable XML: ${err instanceof Error ? err.message : String(err)}`);
  }
  const env = node(doc.Envelope);
  if (!doc.Envelope) throw new ImageFormatError(source, "corrupt", "an OVF <Envelope>", `root elements ${Object.keys(doc).filter((k) => !k.startsWith("?")).join(", ") || "none"}`);
  const files: OvfFile[] = nodes(node(env.References).File).map((f) => ({
    id: attr(f, "id") ?? "",
    href: attr(f, "href") ?? "",
    size: num(attr(f, "size")),
    compression: attr(f, "compression"),
    chunkSize: num(attr(f, "chunkSize")),
  }));
  const vs = nodes(env.VirtualSystem)[0] ?? nodes(node(env.VirtualSystemCollection).VirtualSystem)[0] ?? {};
  const hw = nodes(vs.VirtualHardwareSection);
  const items = hw.flatMap((s) => [...nodes(s.Item), ...nodes(s.StorageItem)]);
  const os = node(vs.OperatingSystemSection);
  const disks: OvfDisk[] = nodes(node(env.DiskSection).Disk).map((d) => {
    const diskId = attr(d, "diskId") ?? "";
    const capacity = num(attr(d, "capacity"));
    const unit = allocationUnits(attr(d, "capacityAllocationUnits"));
    const fileRef = attr(d, "fileRef");
    const diskItem = items.find((i) => {
      const host = text(i.HostResource);
      return host === `ovf:/disk/${diskId}` || host === `/disk/${diskId}`;
    });
    const parentId = diskItem ? text(diskItem.Parent) : undefined;
    const parent = parentId === undefined ? undefined : items.find((i) => text(i.InstanceID) === parentId);
    const format = attr(d, "format");
    return {
      diskId,
      file: files.find((f) => f.id === fileRef),
      capacityBytes: capacity !== undefined && unit !== undefined ? capacity * unit : undefined,
      format,
      diskType: diskTypeOfFormat(format),
      controller: parent ? controllerOf(parent) : undefined,
    };
  });
  const system = node(hw[0]?.System);
  return {
    name: text(vs.Name) ?? attr(vs, "id"),
    osType: attr(os, "osType"),
    osCimId: attr(os, "id"),
    hardwareFamily: text(system.VirtualSystemType),
    files,
    disks,
  };
}

/** A manifest (.mf): "SHA256(disk1.vmdk)= <hex>" lines, by file name. */
export function parseManifest(text: string): Record<string, { algorithm: string; digest: string }> {
  const out: Record<string, { algorithm: string; digest: string }> = {};
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*(SHA1|SHA256|SHA512|MD5)\s*\((.+)\)\s*=\s*([0-9a-fA-F]+)\s*$/.exec(line);
    if (m) out[m[2]!] = { algorithm: m[1]!.toLowerCase(), digest: m[3]!.toLowerCase() };
  }
  return out;
}

export interface OpenedOva {
  ovfName: string;
  ovf: OvfDescriptor;
  /** The manifest's digests, when a .mf came before the disk. */
  manifest: Record<string, { algorithm: string; digest: string }> | undefined;
  /** The boot disk (the DiskSection's first), detected as a VMDK and ready to stream. */
  disk: {
    ovf: OvfDisk;
    /** Its member name in the tar (the File's href). */
    name: string;
    size: number;
    /** The OVF's controller for the disk when it names one Nova knows, else the VMDK's ddb.adapterType. */
    adapterType: AdapterType;
  } & SniffedImage;
}

/**
 * Opens an OVA from a stream: reads the .ovf and manifest, skips to the boot disk, and
 * returns it as a sniffed VMDK stream. Consume (or destroy) `disk.stream`; the tar after
 * the disk is never read, unless `readToEnd`: then the disk stream ends only once the
 * rest of the source has been read (and discarded), for a digest of the whole .ova.
 */
export async function openOva(source: ByteSource, opts: { source?: string; readToEnd?: boolean } = {}): Promise<OpenedOva> {
  const name = opts.source ?? "OVA";
  const reader = new ByteReader(source);
  try {
    const entries = tarEntries(reader, name);
    const first = (await entries.next()).value as TarEntry | undefined;
    if (!first) throw new ImageFormatError(name, "empty", "an OVA (a tar whose first member is the .ovf)", "an empty tar");
    if (!/\.ovf$/i.test(first.name)) {
      throw new UnsupportedImageError(name, `a tar archive whose first member is "${first.name}"`, "An OVA's first member is its .ovf descriptor.");
    }
    const ovfSource = `${name}!${first.name}`;
    const ovf = parseOvf((await first.readAll(MAX_OVF_BYTES)).toString("utf8"), ovfSource);
    const boot = ovf.disks[0];
    if (!boot?.file) throw new ImageFormatError(ovfSource, "corrupt", "a DiskSection whose first Disk names a File in References", boot ? `Disk "${boot.diskId}" with no such file` : "no Disk");
    if (boot.file.compression || boot.file.chunkSize) {
      throw new UnsupportedImageError(ovfSource, `a disk stored ${boot.file.compression ? `${boot.file.compression}-compressed` : "in chunks"} ("${boot.file.href}")`, "Re-export the OVA without compression or chunking (ovftool's defaults).");
    }
    let manifest: OpenedOva["manifest"];
    const seen: string[] = [first.name];
    for (;;) {
      const r = await entries.next();
      if (r.done) {
        throw new ImageFormatError(name, "truncated", `a member "${boot.file.href}" (the disk the .ovf names)`, `members ${seen.map((s) => JSON.stringify(s)).join(", ")} and the end of the archive`);
      }
      const entry = r.value;
      seen.push(entry.name);
      if (/\.mf$/i.test(entry.name)) manifest = parseManifest((await entry.readAll(1 << 20)).toString("utf8"));
      if (entry.name !== boot.file.href) continue;
      const diskSource = `${name}!${entry.name}`;
      // The disk's end (or the caller destroying its stream) closes the source: the rest of the tar is never read.
      async function* diskBytes(): AsyncGenerator<Buffer> {
        try {
          yield* entry.stream();
          if (opts.readToEnd) for await (const _ of reader.rest());
        } finally {
          await reader.close();
        }
      }
      const sniffed = await sniffImage(diskBytes(), { source: diskSource, size: entry.size, expect: ["vmdk"] });
      const vmdk = sniffed.info.format === "vmdk" ? sniffed.info.vmdk : undefined;
      if (boot.diskType && vmdk && vmdk.diskType !== boot.diskType) {
        sniffed.stream.destroy();
        throw new ImageFormatError(diskSource, "corrupt", `a ${boot.diskType} VMDK (the .ovf's ovf:format ${boot.format})`, `a ${vmdk.createType} VMDK`);
      }
      return {
        ovfName: first.name,
        ovf,
        manifest,
        disk: { ...sniffed, ovf: boot, name: entry.name, size: entry.size, adapterType: boot.controller?.adapterType ?? vmdk?.adapterType ?? "lsiLogic" },
      };
    }
  } catch (err) {
    await reader.close();
    throw err;
  }
}

