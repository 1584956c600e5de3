// Format detection from the bytes (real files from qemu-img, tar, a hand-made ISO),
// the corrupt cases as typed errors, and the streaming detector: a bounded prefix read,
// the whole bytes handed back unchanged.
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { createReadStream } from "node:fs";
import { copyFile, readFile, rename, truncate, writeFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ImageFormatError, MissingExtentError, UnsupportedImageError } from "../../provider/vsphere/image-errors.js";
import { detectImage, PREFIX_BYTES } from "../../provider/vsphere/image-format.js";
import { flatExtentsStream, sniffImage, sniffImageFile } from "../../provider/vsphere/image-stream.js";
import { ImageDir, qemuImg } from "../support/images.js";
import { sha256Of } from "../support/hash.js";

let images: ImageDir;
beforeAll(async () => {
  images = await ImageDir.create();
});
afterAll(async () => {
  await images.cleanup();
});

async function detectFile(path: string) {
  const s = await sniffImageFile(path);
  s.stream.destroy();
  return s.info;
}

async function failure(p: Promise<unknown>): Promise<Error> {
  const r = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(r instanceof Error)) throw new Error("expected a failure, got success");
  return r;
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** A source that yields `data` in chunks and counts what was pulled from it. */
function countingSource(data: Buffer, chunk = 16 * 1024) {
  const state = { pulled: 0, closed: false };
  async function* gen() {
    try {
      for (let i = 0; i < data.length; i += chunk) {
        const c = data.subarray(i, i + chunk);
        state.pulled += c.length;
        yield c;
      }
    } finally {
      state.closed = true;
    }
  }
  return { state, source: gen() };
}

describe("detection from the bytes", () => {
  it("qcow2, VHD, VHDX, VDI: formats qemu-img converts, with qcow2's virtual size", async () => {
    expect(await detectFile(await images.qemu("disk.qcow2", "qcow2", 16))).toMatchObject({ format: "qcow2", qemuFormat: "qcow2", virtualSize: 16 << 20 });
    expect(await detectFile(await images.qemu("a.img", "vpc"))).toMatchObject({ format: "vhd", qemuFormat: "vpc" });
    expect(await detectFile(await images.qemu("b.img", "vhdx"))).toMatchObject({ format: "vhdx" });
    expect(await detectFile(await images.qemu("c.img", "vdi"))).toMatchObject({ format: "vdi" });
  });

  it("the name never decides: a qcow2 named .vmdk is qcow2, a VMDK named .iso is a VMDK", async () => {
    await copyFile(images.path("disk.qcow2"), images.path("lying.vmdk"));
    expect((await detectFile(images.path("lying.vmdk"))).format).toBe("qcow2");
    await images.sparseVmdk("lying.iso", { adapter: "ide", sizeMiB: 8 });
    expect((await detectFile(images.path("lying.iso"))).format).toBe("vmdk");
  });

  it("ISO 9660 by CD001 at 0x8001, with its volume id and size", async () => {
    expect(await detectFile(await images.iso("cd.iso", "MYVOLUME"))).toEqual({ format: "iso", volumeId: "MYVOLUME", volumeBytes: 18 * 2048, size: 18 * 2048 });
  });

  it("an ISO cut short of the size its volume descriptor declares is truncated", async () => {
    await copyFile(images.path("cd.iso"), images.path("cut.iso"));
    await truncate(images.path("cut.iso"), 17 * 2048);
    expect(await failure(detectFile(images.path("cut.iso")))).toMatchObject({ code: "InvalidImage", reason: "truncated" });
  });

  it("raw only as a guess, for whole sectors, with an MBR or GPT noticed", async () => {
    const plain = await images.raw("plain.raw", 1 << 20);
    expect(await detectFile(plain)).toEqual({ format: "raw", guess: true, evidence: "none", size: 1 << 20 });
    const mbr = Buffer.alloc(4096);
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    await writeFile(images.path("mbr.raw"), mbr);
    expect(await detectFile(images.path("mbr.raw"))).toMatchObject({ format: "raw", evidence: "mbr" });
    const odd = await images.raw("odd.raw", 1000);
    const err = await failure(detectFile(odd));
    expect(err).toBeInstanceOf(ImageFormatError);
    expect(err).toMatchObject({ code: "InvalidImage", reason: "notSectorAligned" });
    expect(err.message).toContain(odd);
    expect(err.message).toMatch(/1000 bytes/);
  });

  it("compressed files and a bare .ovf are refused with what to do", async () => {
    const gz = images.path("x.vmdk.gz");
    await writeFile(gz, Buffer.from([0x1f, 0x8b, 8, 0, ...randomBytes(1020)]));
    const err = await failure(detectFile(gz));
    expect(err).toBeInstanceOf(UnsupportedImageError);
    expect(err.message).toMatch(/gzip.*gunzip/);
    await writeFile(images.path("vm.ovf"), '<?xml version="1.0"?>\n<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"></Envelope>\n');
    expect((await failure(detectFile(images.path("vm.ovf")))).message).toMatch(/bare OVF/);
  });

  it("a tar is an OVA only when its first member is the .ovf", async () => {
    await writeFile(images.path("vm1.ovf"), "<Envelope/>");
    await writeFile(images.path("readme.txt"), "hello");
    expect(await detectFile(await images.tar("good.ova", ["vm1.ovf", "readme.txt"]))).toMatchObject({ format: "ova", ovfName: "vm1.ovf" });
    const err = await failure(detectFile(await images.tar("bad.ova", ["readme.txt", "vm1.ovf"])));
    expect(err).toMatchObject({ code: "UnsupportedImage" });
    expect(err.message).toMatch(/first member is "readme.txt"/);
  });
});

describe("corrupt, truncated and empty images", () => {
  it("an empty file", async () => {
    await writeFile(images.path("empty.vmdk"), "");
    const err = await failure(detectFile(images.path("empty.vmdk")));
    expect(err).toMatchObject({ code: "InvalidImage", reason: "empty" });
    expect(err.message).toContain("empty.vmdk");
  });

  it("a sparse header cut at 100 bytes", async () => {
    const full = await readFile(await images.sparseVmdk("whole.vmdk", { sizeMiB: 8 }));
    await writeFile(images.path("cut.vmdk"), full.subarray(0, 100));
    const err = await failure(detectFile(images.path("cut.vmdk")));
    expect(err).toMatchObject({ code: "InvalidImage", reason: "truncated", expected: "a 512-byte VMDK sparse extent header", found: "100 bytes" });
  });

  it("a sparse file cut inside its metadata is truncated", async () => {
    const full = await readFile(images.path("whole.vmdk"));
    await writeFile(images.path("short.vmdk"), full.subarray(0, 8192));
    expect(await failure(detectFile(images.path("short.vmdk")))).toMatchObject({ reason: "truncated" });
  });

  it("a descriptor whose extent file is missing names it", async () => {
    await images.flatVmdk("lost.vmdk", { sizeMiB: 4 });
    await rename(images.path("lost-flat.vmdk"), images.path("moved-away.bin"));
    const err = await failure(sniffImageFile(images.path("lost.vmdk")));
    expect(err).toBeInstanceOf(MissingExtentError);
    expect(err).toMatchObject({ code: "MissingExtent", missing: ["lost-flat.vmdk"] });
    expect(err.message).toContain('"lost-flat.vmdk"');
  });

  it("a flat extent shorter than its descriptor says is truncated", async () => {
    await images.flatVmdk("shortflat.vmdk", { sizeMiB: 4 });
    await truncate(images.path("shortflat-flat.vmdk"), 1 << 20);
    expect(await failure(sniffImageFile(images.path("shortflat.vmdk")))).toMatchObject({ code: "InvalidImage", reason: "truncated" });
  });

  it("a wrong magic: a damaged sparse VMDK, and any non-VMDK where a VMDK is expected", async () => {
    const bytes = Buffer.from(await readFile(images.path("whole.vmdk")));
    bytes.write("KDMW", 0, "latin1");
    await writeFile(images.path("badmagic.vmdk"), bytes);
    const err = await failure(detectFile(images.path("badmagic.vmdk")));
    expect(err).toMatchObject({ code: "InvalidImage", reason: "badMagic" });
    expect(err.message).toMatch(/"KDMV".*4b 44 4d 57 \("KDMW"\)/);
    const raw = await images.raw("notvmdk.raw", 4096);
    const err2 = await failure(sniffImage(createReadStream(raw), { source: raw, expect: ["vmdk"] }));
    expect(err2).toMatchObject({ code: "InvalidImage", reason: "badMagic" });
    expect(err2.message).toMatch(/expected a VMDK \(magic "KDMV"\), found raw disk/);
  });

  it("a sparse header whose descriptor offset points at no descriptor, or past the metadata", async () => {
    const bytes = Buffer.from(await readFile(images.path("whole.vmdk")));
    bytes.writeBigUInt64LE(40n, 28); // descriptorOffset: sector 40, zeros in qemu's layout
    await writeFile(images.path("baddesc.vmdk"), bytes);
    const err = await failure(detectFile(images.path("baddesc.vmdk")));
    expect(err).toMatchObject({ code: "InvalidImage", reason: "corrupt" });
    expect(err.message).toMatch(/descriptor text at sector 40/);
    bytes.writeBigUInt64LE(1000n, 28); // beyond the 128-sector overhead
    await writeFile(images.path("baddesc2.vmdk"), bytes);
    expect((await failure(detectFile(images.path("baddesc2.vmdk")))).message).toMatch(/descriptorOffset 1000/);
  });

  it("a header that says compressed grains with a monolithicSparse descriptor is corrupt", async () => {
    const bytes = Buffer.from(await readFile(images.path("whole.vmdk")));
    bytes.writeUInt32LE(bytes.readUInt32LE(8) | (1 << 16) | (1 << 17), 8);
    bytes.writeUInt16LE(1, 77);
    await writeFile(images.path("mixed.vmdk"), bytes);
    expect((await failure(detectFile(images.path("mixed.vmdk")))).message).toMatch(/createType "streamOptimized".*found createType "monolithicSparse"/);
  });
});

describe("streaming detection", () => {
  it("reads a bounded prefix, pulls nothing more until the caller reads, and hands back identical bytes", async () => {
    const path = await images.convertedVmdk("stream.vmdk", "streamOptimized", { sizeMiB: 16, dataMiB: 6 });
    const data = await readFile(path);
    expect(data.length).toBeGreaterThan(4 * PREFIX_BYTES);
    const { state, source } = countingSource(data);
    const s = await sniffImage(source, { source: path });
    expect(s.info.format === "vmdk" && s.info.vmdk.createType).toBe("streamOptimized");
    expect(state.pulled).toBe(PREFIX_BYTES);
    expect(s.prefixBytes).toBe(PREFIX_BYTES);
    await new Promise((r) => setImmediate(r));
    expect(state.pulled).toBe(PREFIX_BYTES);
    const back = await sha256Of(s.stream);
    expect(back).toEqual({ sha256: sha256(data), bytes: data.length });
    expect(state.closed).toBe(true);
  });

  it("from a file path: the same bytes, the size checked", async () => {
    const path = images.path("stream.vmdk");
    const s = await sniffImageFile(path);
    expect(s.info.size).toBe((await readFile(path)).length);
    expect((await sha256Of(s.stream)).sha256).toBe(sha256(await readFile(path)));
  });

  it("a source shorter than its declared size fails the stream at its end", async () => {
    const data = randomBytes(PREFIX_BYTES * 3);
    const s = await sniffImage(countingSource(data).source, { source: "http://x/disk.raw", size: data.length + 512 });
    expect(s.info).toMatchObject({ format: "raw", size: data.length + 512 });
    expect(await failure(sha256Of(s.stream))).toMatchObject({ code: "InvalidImage", reason: "truncated" });
  });

  it("a raw stream of unknown size that is not whole sectors fails at its end", async () => {
    const data = randomBytes(PREFIX_BYTES * 2 + 100);
    const s = await sniffImage(countingSource(data).source, { source: "http://x/disk.raw" });
    expect(s.info).toMatchObject({ format: "raw", guess: true, size: undefined });
    expect(await failure(sha256Of(s.stream))).toMatchObject({ code: "InvalidImage", reason: "notSectorAligned" });
  });

  it("destroying the handed-back stream before reading it closes the source", async () => {
    const { state, source } = countingSource(randomBytes(PREFIX_BYTES * 4));
    const s = await sniffImage(source);
    expect(state.closed).toBe(false);
    s.stream.destroy();
    await once(s.stream, "close");
    expect(state.closed).toBe(true);
    expect(state.pulled).toBe(PREFIX_BYTES);
  });

  it("a failed detection closes the source", async () => {
    const { state, source } = countingSource(Buffer.alloc(0));
    await expect(sniffImage(source)).rejects.toMatchObject({ reason: "empty" });
    expect(state.closed).toBe(true);
    const odd = countingSource(randomBytes(PREFIX_BYTES * 2));
    const s = await sniffImage(odd.source, { expect: ["vmdk"] }).catch((e: unknown) => e);
    expect(s).toMatchObject({ reason: "badMagic" });
    expect(odd.state.closed).toBe(true);
  });

  it("a descriptor offset far in the file makes detection read up to the descriptor's end, no further", () => {
    const header = Buffer.alloc(512);
    header.write("KDMV", 0, "latin1");
    header.writeUInt32LE(1, 4);
    header.writeBigUInt64LE(2048n, 12);
    header.writeBigUInt64LE(128n, 20);
    header.writeBigUInt64LE(200n, 28);
    header.writeBigUInt64LE(2n, 36);
    header.writeBigUInt64LE(256n, 64);
    expect(detectImage(Buffer.concat([header, Buffer.alloc(PREFIX_BYTES - 512)]), { source: "t", complete: false })).toEqual({ needBytes: 202 * 512 });
  });
});

describe("flat extents", () => {
  it("a descriptor qemu-img convert wrote (padded to a sector with NULs) is a descriptor, but text broken by a NUL is not", async () => {
    const raw = await images.raw("padded.raw", 1 << 20);
    await qemuImg("convert", "-q", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicFlat,adapter_type=lsilogic", raw, images.path("padded.vmdk"));
    const bytes = await readFile(images.path("padded.vmdk"));
    expect(bytes[bytes.length - 1]).toBe(0);
    const s = await sniffImageFile(images.path("padded.vmdk"));
    s.stream.destroy();
    expect(s.info.format).toBe("vmdkDescriptor");
    expect(s.extents.map((e) => e.fileName)).toEqual(["padded-flat.vmdk"]);
    const broken = Buffer.from(bytes);
    broken[20] = 0;
    expect(detectImage(broken, { source: "broken", complete: true })).not.toMatchObject({ info: { format: "vmdkDescriptor" } });
  });

  it("a descriptor's extents, offsets honoured, stream as the disk's bytes in order", async () => {
    const a = randomBytes(1536);
    const b = randomBytes(4096);
    await writeFile(images.path("part-a.bin"), Buffer.concat([randomBytes(512), a]));
    await writeFile(images.path("part-b.bin"), b);
    await writeFile(
      images.path("two.vmdk"),
      '# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="monolithicFlat"\nRW 3 FLAT "part-a.bin" 1\nRW 8 FLAT "part-b.bin" 0\nddb.adapterType = "ide"\n',
    );
    const s = await sniffImageFile(images.path("two.vmdk"));
    s.stream.destroy();
    expect(s.info.format === "vmdkDescriptor" && s.info.vmdk.capacityBytes).toBe(11 * 512);
    expect(s.extents.map((e) => [e.fileName, e.offsetBytes, e.lengthBytes])).toEqual([
      ["part-a.bin", 512, 1536],
      ["part-b.bin", 0, 4096],
    ]);
    expect((await sha256Of(flatExtentsStream(s.extents))).sha256).toBe(sha256(Buffer.concat([a, b])));
  });

  it("an extent named with a folder is refused: a descriptor must not reach other files", async () => {
    await writeFile(images.path("escape.vmdk"), '# Disk DescriptorFile\ncreateType="monolithicFlat"\nRW 8 FLAT "../../etc/passwd" 0\n');
    expect(await failure(sniffImageFile(images.path("escape.vmdk")))).toMatchObject({ code: "UnsupportedImage" });
  });
});
