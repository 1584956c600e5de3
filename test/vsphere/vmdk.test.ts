// VMDK parsing against real files from qemu-img, cross-checked with vmdkinfo (libvmdk),
// and the diskType / adapterType mapping and contradiction rules.
import { readFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sniffImageFile } from "../../provider/vsphere/image-stream.js";
import { ImageFormatError, UnsupportedImageError } from "../../provider/vsphere/image-errors.js";
import { contradictions, parseDescriptor, parseSparseHeader, vmdkInfo, type AdapterType, type VmdkInfo } from "../../provider/vsphere/vmdk.js";
import { ImageDir, vmdkinfo, type QemuAdapter } from "../support/images.js";

let images: ImageDir;
beforeAll(async () => {
  images = await ImageDir.create();
});
afterAll(async () => {
  await images.cleanup();
});

async function vmdkOf(path: string): Promise<VmdkInfo> {
  const s = await sniffImageFile(path);
  s.stream.destroy();
  if (s.info.format !== "vmdk" && s.info.format !== "vmdkDescriptor") throw new Error(`${path} detected as ${s.info.format}`);
  return s.info.vmdk;
}

const ADAPTERS: Array<[QemuAdapter, AdapterType]> = [
  ["ide", "ide"],
  ["buslogic", "busLogic"],
  ["lsilogic", "lsiLogic"],
  ["legacyESX", "lsiLogic"],
];

describe("monolithicSparse from qemu-img", () => {
  it.each(ADAPTERS)("adapter_type=%s reads as adapterType %s, diskType sparse, capacity as vmdkinfo says", async (qemu, api) => {
    const path = await images.sparseVmdk(`sparse-${qemu}.vmdk`, { adapter: qemu, sizeMiB: 64 });
    const info = await vmdkOf(path);
    const ref = await vmdkinfo(path);
    expect(ref.diskType).toBe("Monolithic sparse");
    expect(info).toMatchObject({ createType: "monolithicSparse", diskType: "sparse", adapterType: api, descriptorAdapterType: qemu });
    expect(info.capacityBytes).toBe(ref.mediaSize);
    expect(info.capacityBytes).toBe(64 << 20);
    expect([info.descriptor.cid, info.descriptor.parentCID]).toEqual([ref.cid, ref.parentCid]);
    expect(info.descriptor.extents.map((e) => e.fileName)).toEqual(ref.extentFiles);
    expect(info.header).toMatchObject({ version: 1, compressed: false, hasMarkers: false, grainSectors: 128, descriptorOffsetSectors: 1 });
    expect(info.descriptor.extents).toEqual([{ access: "RW", sizeSectors: (64 << 20) / 512, type: "SPARSE", fileName: `sparse-${qemu}.vmdk`, offsetSectors: 0 }]);
    expect(info.hardwareVersion).toBe(4);
    expect(info.descriptor.ddb["geometry.heads"]).toMatch(/^\d+$/);
  });
});

describe("streamOptimized from qemu-img convert", () => {
  it("reads the compressed-grain header and the descriptor, as vmdkinfo does", async () => {
    const path = await images.convertedVmdk("so.vmdk", "streamOptimized", { adapter: "lsilogic", sizeMiB: 8, dataMiB: 3 });
    const info = await vmdkOf(path);
    const ref = await vmdkinfo(path);
    expect(ref.diskType).toBe("Stream optimized");
    expect(info).toMatchObject({ createType: "streamOptimized", diskType: "streamOptimized", adapterType: "lsiLogic", capacityBytes: ref.mediaSize });
    expect(info.header).toMatchObject({ version: 3, compressed: true, hasMarkers: true, compressAlgorithm: 1 });
    expect(info.descriptor.cid).toBe(ref.cid);
  });

  it("a grain directory in the footer (gdOffset all ones, as VMware writes it) reads as undefined", async () => {
    const bytes = Buffer.from(await readFile(images.path("so.vmdk")));
    bytes.writeBigUInt64LE(0xffffffffffffffffn, 56);
    expect(parseSparseHeader(bytes, "t")).toMatchObject({ gdOffsetSectors: undefined, capacitySectors: (8 << 20) / 512 });
  });
});

describe("flat descriptors from qemu-img", () => {
  it("monolithicFlat: a descriptor whose extent is the -flat file beside it, diskType preallocated", async () => {
    const path = await images.flatVmdk("flat.vmdk", { adapter: "lsilogic", sizeMiB: 16 });
    const s = await sniffImageFile(path);
    s.stream.destroy();
    expect(s.info.format).toBe("vmdkDescriptor");
    if (s.info.format !== "vmdkDescriptor") return;
    const ref = await vmdkinfo(path);
    expect(ref.diskType).toBe("Monolithic flat");
    expect(s.info.vmdk).toMatchObject({ createType: "monolithicFlat", diskType: "preallocated", adapterType: "lsiLogic", capacityBytes: ref.mediaSize });
    expect(ref.extentFiles).toEqual(["flat-flat.vmdk"]);
    expect(s.extents).toEqual([{ fileName: "flat-flat.vmdk", path: images.path("flat-flat.vmdk"), offsetBytes: 0, lengthBytes: 16 << 20 }]);
  });

  it("twoGbMaxExtentFlat: preallocated, its extent resolved", async () => {
    const path = await images.flatVmdk("split.vmdk", { subformat: "twoGbMaxExtentFlat", adapter: "ide", sizeMiB: 16 });
    const s = await sniffImageFile(path);
    s.stream.destroy();
    expect(s.info.format === "vmdkDescriptor" && s.info.vmdk).toMatchObject({ createType: "twoGbMaxExtentFlat", diskType: "preallocated", adapterType: "ide" });
    expect(s.extents.map((e) => e.fileName)).toEqual(["split-f001.vmdk"]);
  });

  it("twoGbMaxExtentSparse is refused with how to convert it", async () => {
    const path = images.path("tgs.vmdk");
    const { qemuImg } = await import("../support/images.js");
    await qemuImg("create", "-q", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", path, "16M");
    const err = await sniffImageFile(path).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnsupportedImageError);
    expect((err as UnsupportedImageError).code).toBe("UnsupportedImage");
    expect((err as Error).message).toMatch(/twoGbMaxExtentSparse.*qemu-img convert/);
  });
});

describe("descriptor text", () => {
  const text = (createType: string, extra = "") => `# Disk DescriptorFile
version=1
encoding="UTF-8"
CID=fffffffe
parentCID=ffffffff
isNativeSnapshot="no"
createType="${createType}"

# Extent description
RW 41943040 VMFS "disk-flat.vmdk"

# The Disk Data Base
#DDB

ddb.adapterType = "lsilogic"
ddb.geometry.cylinders = "2610"
ddb.geometry.heads = "255"
ddb.geometry.sectors = "63"
ddb.longContentID = "8f5ab0f9b7a1a0d2e3b8a2a8fffffffe"
ddb.toolsVersion = "10346"
ddb.uuid = "60 00 C2 9d 0a 2e 3c 41-8c 1f 5b 2f 4d 12 3e 8a"
ddb.virtualHWVersion = "13"
${extra}`;

  it("reads every field an ESXi descriptor has", () => {
    const d = parseDescriptor(text("vmfs"), "t");
    expect(d).toMatchObject({ version: 1, cid: "fffffffe", parentCID: "ffffffff", createType: "vmfs" });
    expect(d.fields).toMatchObject({ encoding: "UTF-8", isNativeSnapshot: "no" });
    expect(d.ddb).toMatchObject({ uuid: "60 00 C2 9d 0a 2e 3c 41-8c 1f 5b 2f 4d 12 3e 8a", toolsVersion: "10346", "geometry.cylinders": "2610" });
    expect(d.extents).toEqual([{ access: "RW", sizeSectors: 41943040, type: "VMFS", fileName: "disk-flat.vmdk", offsetSectors: 0 }]);
    expect(vmdkInfo(d, undefined, "t")).toMatchObject({ diskType: "preallocated", hardwareVersion: 13, capacityBytes: 41943040 * 512 });
  });

  it("reads a content id written without leading zeros (as qemu-img does) as the same 8-digit id", () => {
    const d = parseDescriptor(text("vmfs").replace("CID=fffffffe", "CID=31B227C"), "t");
    expect(d.cid).toBe("031b227c");
    expect(d.parentCID).toBe("ffffffff");
  });

  it("a VMFS thin disk's descriptor (ddb.thinProvisioned = 1) reads as thin", () => {
    expect(vmdkInfo(parseDescriptor(text("vmfs", 'ddb.thinProvisioned = "1"'), "t"), undefined, "t").diskType).toBe("thin");
  });

  it("a delta disk (parentCID set) is refused: it needs its parent", () => {
    const d = parseDescriptor(text("vmfsSparse").replace("parentCID=ffffffff", "parentCID=1234abcd"), "t");
    expect(() => vmdkInfo(d, undefined, "t")).toThrow(UnsupportedImageError);
  });

  it("a sparse createType in a standalone descriptor, an unknown adapter, or no extent is corrupt", () => {
    expect(() => vmdkInfo(parseDescriptor(text("monolithicSparse"), "t"), undefined, "t")).toThrow(/sparse extent header/);
    expect(() => vmdkInfo(parseDescriptor(text("vmfs").replace('"lsilogic"', '"scsi"'), "t"), undefined, "t")).toThrow(ImageFormatError);
    expect(() => parseDescriptor('createType="vmfs"\n', "t")).toThrow(/at least one extent/);
  });
});

describe("declared diskType / adapterType against the file", () => {
  const file = (createType: string, diskType: VmdkInfo["diskType"], descriptorAdapterType: VmdkInfo["descriptorAdapterType"]) => ({ createType, diskType, descriptorAdapterType });

  it("an IDE disk declared SCSI, or the reverse, is the boot failure", () => {
    const [c] = contradictions(file("monolithicSparse", "sparse", "ide"), { adapterType: "lsiLogic" });
    expect(c).toMatchObject({ property: "adapterType", declared: "lsiLogic", detected: "ide" });
    expect(c!.message).toMatch(/IDE disk cannot boot from a SCSI controller/);
    const [r] = contradictions(file("monolithicSparse", "sparse", "lsilogic"), { adapterType: "ide" });
    expect(r!.message).toMatch(/SCSI disk cannot boot from an IDE controller/);
  });

  it("lsiLogicsas and paraVirtual on an lsilogic file are fine: a descriptor has no word for them", () => {
    for (const a of ["lsiLogic", "lsiLogicsas", "paraVirtual"] as const) {
      expect(contradictions(file("monolithicSparse", "sparse", "lsilogic"), { adapterType: a })).toEqual([]);
    }
  });

  it("legacyESX takes any SCSI type; buslogic only busLogic; no ddb.adapterType takes anything", () => {
    expect(contradictions(file("vmfs", "preallocated", "legacyESX"), { adapterType: "busLogic" })).toEqual([]);
    expect(contradictions(file("vmfs", "preallocated", "legacyESX"), { adapterType: "ide" })).toHaveLength(1);
    expect(contradictions(file("vmfs", "preallocated", "buslogic"), { adapterType: "lsiLogic" })[0]!.message).toMatch(/BusLogic/);
    expect(contradictions(file("vmfs", "preallocated", undefined), { adapterType: "ide" })).toEqual([]);
  });

  it("disk types: flat takes thin or preallocated; sparse and streamOptimized only themselves", () => {
    expect(contradictions(file("monolithicFlat", "preallocated", "ide"), { diskType: "thin" })).toEqual([]);
    const [c] = contradictions(file("monolithicSparse", "sparse", "ide"), { diskType: "preallocated" });
    expect(c).toMatchObject({ property: "diskType", declared: "preallocated", detected: "sparse" });
    expect(c!.message).toMatch(/monolithicSparse/);
    expect(contradictions(file("streamOptimized", "streamOptimized", "ide"), { diskType: "sparse", adapterType: "paraVirtual" }).map((x) => x.property)).toEqual([
      "diskType",
      "adapterType",
    ]);
  });
});
