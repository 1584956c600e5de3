// Image sources, local and over HTTP (test/support/http-source.ts), with real qemu-img
// images: what inspect says, what the digests are of, what openSource streams, the
// qemu-img conversions, and the errors a user meets (missing, refused, changed, cut).
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFile, mkdir, mkdtemp, readdir, readFile, readlink, stat, utimes, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inspectSource, digestSource, openSource, type InspectedSource, type SourceSpec } from "../../provider/vsphere/image-source.js";
import { sha256Of } from "../support/hash.js";
import { HttpSource } from "../support/http-source.js";
import { ImageDir, ovfText, qemuImg } from "../support/images.js";
import { rejection } from "../support/rejection.js";

const run = promisify(execFile);
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const md5 = (b: Buffer) => createHash("md5").update(b).digest("hex");

let images: ImageDir;
let http: HttpSource;
let other: HttpSource;
const bytes: Record<string, Buffer> = {};

beforeAll(async () => {
  images = await ImageDir.create();
  await images.convertedVmdk("sparse.vmdk", "monolithicSparse", { adapter: "ide", sizeMiB: 8, dataMiB: 2 });
  await images.convertedVmdk("stream.vmdk", "streamOptimized", { adapter: "buslogic", sizeMiB: 8, dataMiB: 2 });
  await images.flatVmdk("flat.vmdk", { adapter: "lsilogic", sizeMiB: 4 });
  // Data in the flat extent, so its digest and bytes are not all zeros.
  const flat = await readFile(images.path("flat-flat.vmdk"));
  (await images.raw("noise", 1 << 20)) && (await readFile(images.path("noise"))).copy(flat, 4096);
  await writeFile(images.path("flat-flat.vmdk"), flat);
  await images.flatVmdk("two.vmdk", { adapter: "buslogic", sizeMiB: 2, subformat: "twoGbMaxExtentFlat" });
  await images.iso("cd.iso", "SOURCEISO");
  // An OVA around a streamOptimized disk, with a paravirtual SCSI controller.
  await images.convertedVmdk("ova-disk1.vmdk", "streamOptimized", { adapter: "lsilogic", sizeMiB: 8, dataMiB: 2 });
  const diskSize = (await stat(images.path("ova-disk1.vmdk"))).size;
  await writeFile(images.path("vm.ovf"), ovfText({ diskFile: "ova-disk1.vmdk", diskFileSize: diskSize, capacityBytes: 8 << 20, controller: { resourceType: 6, subType: "VirtualSCSI" }, osType: "ubuntu64Guest" }));
  await images.tar("vm.ova", ["vm.ovf", "ova-disk1.vmdk"]);
  // Raw disks: one with an MBR boot signature, one with nothing to say it is a disk, one with an MBR but not whole KiB.
  const mbr = Buffer.alloc(4 << 20);
  mbr.write("raw disk data", 1024);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  await writeFile(images.path("mbr.img"), mbr);
  const noise = await readFile(images.path("noise"));
  noise[510] = 0;
  await writeFile(images.path("unknown.bin"), noise);
  await writeFile(images.path("odd-mbr.img"), mbr.subarray(0, 2049 * 512));
  // qcow2 with data (converted from a raw of random bytes), and the other qemu formats empty.
  await images.raw("q.raw", 16 << 20, 3 << 20);
  await qemuImg("convert", "-f", "raw", "-O", "qcow2", images.path("q.raw"), images.path("disk.qcow2"));
  await images.qemu("disk.vhd", "vpc", 8);
  await images.qemu("disk.vhdx", "vhdx", 8);
  await images.qemu("disk.vdi", "vdi", 8);
  for (const f of ["sparse.vmdk", "stream.vmdk", "flat.vmdk", "flat-flat.vmdk", "two.vmdk", "two-f001.vmdk", "cd.iso", "ova-disk1.vmdk", "vm.ova", "mbr.img", "disk.qcow2"]) bytes[f] = await readFile(images.path(f));
  http = await HttpSource.start(images.dir);
  other = await HttpSource.start(images.dir);
});
afterAll(async () => {
  await http?.close();
  await other?.close();
  await images?.cleanup();
});

type Where = "file" | "url";
const spec = (where: Where, name: string, route = "files"): SourceSpec => ({ source: where === "file" ? images.path(name) : http.url(`/${route}/${name}`) });
const inspect = (where: Where, name: string) => inspectSource(spec(where, name));

/** A fresh folder for openSource's temp folders, to see what it leaves. */
async function tmpRoot(): Promise<string> {
  const dir = images.path(`tmp-${Math.random().toString(36).slice(2)}`);
  await mkdir(dir);
  return dir;
}

describe.each(["file", "url"] as const)("inspectSource (%s)", (where) => {
  it.each([
    ["sparse.vmdk", "vmdk", "ide", 8 << 20],
    ["stream.vmdk", "vmdk", "busLogic", 8 << 20],
    ["cd.iso", "iso", undefined, undefined],
    ["mbr.img", "raw", undefined, 4 << 20],
  ] as const)("%s: %s", async (name, format, adapterType, capacity) => {
    const s = await inspect(where, name);
    expect(s.info.format).toBe(format);
    expect(s.disk?.adapterType).toBe(adapterType);
    expect(s.capacityBytes).toBe(capacity ?? bytes[name]!.length);
    expect(s.sizeBytes).toBe(bytes[name]!.length);
    expect(s.conversion).toBeUndefined();
    if (where === "file") {
      const st = await stat(images.path(name));
      expect(s.name).toBe(images.path(name));
      expect(s.fingerprint).toEqual({ kind: "file", files: [{ path: images.path(name), size: st.size, mtimeMs: st.mtimeMs }] });
    } else {
      expect(s.name).toBe(http.url(`/files/${name}`));
      expect(s.fingerprint).toMatchObject({ kind: "url", url: http.url(`/files/${name}`), size: bytes[name]!.length, etag: expect.stringMatching(/^".+"$/), lastModified: expect.stringMatching(/GMT$/) });
    }
  });

  it("a monolithicFlat descriptor: its extent in the fingerprint and size", async () => {
    const s = await inspect(where, "flat.vmdk");
    expect(s.info.format).toBe("vmdkDescriptor");
    expect(s.disk).toMatchObject({ adapterType: "lsiLogic", vmdk: { createType: "monolithicFlat", capacityBytes: 4 << 20 } });
    expect(s.sizeBytes).toBe(bytes["flat.vmdk"]!.length + (4 << 20));
    if (s.fingerprint.kind === "file") expect(s.fingerprint.files.map((f) => f.path)).toEqual([images.path("flat.vmdk"), images.path("flat-flat.vmdk")]);
  });

  it("an OVA: the boot disk's VMDK with the OVF's controller, and the OVF's osType and name", async () => {
    const before = http.requests.length;
    const s = await inspect(where, "vm.ova");
    expect(s.info.format).toBe("ova");
    expect(s.disk).toMatchObject({ adapterType: "paraVirtual", vmdk: { createType: "streamOptimized", descriptorAdapterType: "lsilogic" } });
    expect(s.ovf).toEqual({ osType: "ubuntu64Guest", name: "test-vm" });
    expect(s.capacityBytes).toBe(8 << 20);
    expect(s.sizeBytes).toBe(bytes["vm.ova"]!.length);
    // The disk's first 64 KiB (what detection reads) end past the first 64 KiB of the tar: one more range, from where the first ended.
    if (where === "url") expect(http.requests.slice(before).map((r) => [r.method, r.headers.range])).toEqual([["GET", "bytes=0-65535"], ["GET", "bytes=65536-"]]);
    if (where === "url") await Promise.all(http.requests.slice(before).map((r) => r.socketClosed));
  });

  it.each([
    ["disk.qcow2", "qcow2", "qcow2", 16 << 20],
    // qemu-img rounds a VHD up to whole CHS geometry: 8 MiB is 16 × 4 × 256 sectors + 4.
    ["disk.vhd", "vhd", "vpc", 8390656],
    ["disk.vhdx", "vhdx", "vhdx", 8 << 20],
    ["disk.vdi", "vdi", "vdi", 8 << 20],
    ["odd-mbr.img", "raw", "raw", 2049 * 512],
  ] as const)("%s needs qemu-img (%s → %s)", async (name, format, from, capacity) => {
    const s = await inspect(where, name);
    expect(s.info.format).toBe(format);
    expect(s.conversion).toEqual({ tool: "qemu-img", from });
    expect(s.disk).toBeUndefined();
    // Over HTTP only the header says the virtual size: VHDX and VDI headers are not parsed.
    if (where === "file" || format === "qcow2" || format === "raw") expect(s.capacityBytes).toBe(capacity);
  });
});

describe.each(["file", "url"] as const)("digestSource (%s)", (where) => {
  it.each([
    ["sparse.vmdk", "sparse.vmdk"],
    ["cd.iso", "cd.iso"],
    ["flat.vmdk", "flat-flat.vmdk"],
    ["vm.ova", "vm.ova"],
    ["disk.qcow2", "disk.qcow2"],
  ])("%s: the digests of %s", async (name, of) => {
    const d = await digestSource(await inspect(where, name), ["sha256", "md5"]);
    expect(d).toEqual({ sha256: sha256(bytes[of]!), md5: md5(bytes[of]!), bytes: bytes[of]!.length });
  });

  it("equals sha256sum of the -flat for a one-extent descriptor", async () => {
    const sum = (await run("sha256sum", [images.path("flat-flat.vmdk")])).stdout.split(" ")[0];
    expect((await digestSource(await inspect(where, "flat.vmdk"), ["sha256"])).sha256).toBe(sum);
  });
});

async function drain(s: InspectedSource, opts: Partial<Parameters<typeof openSource>[1]> = {}) {
  const opened = await openSource(s, { algorithms: ["sha256", "md5"], ...opts });
  try {
    const read = await sha256Of(opened.publish.stream);
    return { publish: opened.publish, read, digests: await opened.digests };
  } finally {
    await opened.dispose();
  }
}

describe.each(["file", "url"] as const)("openSource (%s)", (where) => {
  it.each([
    ["sparse.vmdk", "sparse", "ide"],
    ["stream.vmdk", "streamOptimized", "busLogic"],
  ] as const)("%s streams the file as %s", async (name, kind, adapterType) => {
    const { publish, read, digests } = await drain(await inspect(where, name));
    expect(publish).toMatchObject({ kind, adapterType, capacityBytes: 8 << 20, length: bytes[name]!.length });
    expect(read).toEqual({ sha256: sha256(bytes[name]!), bytes: bytes[name]!.length });
    expect(digests).toEqual({ sha256: sha256(bytes[name]!), md5: md5(bytes[name]!), bytes: bytes[name]!.length });
  });

  it("an adapterType given overrides the file's", async () => {
    const { publish } = await drain(await inspect(where, "sparse.vmdk"), { adapterType: "lsiLogicsas" });
    expect(publish).toMatchObject({ kind: "sparse", adapterType: "lsiLogicsas" });
  });

  it("a twoGbMaxExtentFlat descriptor streams its -f001 extent as a flat disk", async () => {
    const s = await inspect(where, "two.vmdk");
    expect(s.sizeBytes).toBe(bytes["two.vmdk"]!.length + (2 << 20));
    const { publish, read } = await drain(s);
    expect(publish).toMatchObject({ kind: "flat", adapterType: "busLogic", capacityBytes: 2 << 20, length: 2 << 20 });
    expect(read.sha256).toBe(sha256(bytes["two-f001.vmdk"]!));
    expect((await digestSource(s, ["sha256"])).sha256).toBe(read.sha256);
  });

  it("an ISO streams as iso", async () => {
    const { publish, read, digests } = await drain(await inspect(where, "cd.iso"));
    expect(publish).toMatchObject({ kind: "iso", length: bytes["cd.iso"]!.length });
    expect(read.sha256).toBe(sha256(bytes["cd.iso"]!));
    expect(digests.sha256).toBe(read.sha256);
  });

  it("a descriptor streams its -flat extent as a flat disk", async () => {
    const { publish, read, digests } = await drain(await inspect(where, "flat.vmdk"));
    expect(publish).toMatchObject({ kind: "flat", diskType: "preallocated", adapterType: "lsiLogic", capacityBytes: 4 << 20, length: 4 << 20 });
    expect(read).toEqual({ sha256: sha256(bytes["flat-flat.vmdk"]!), bytes: 4 << 20 });
    expect(digests.sha256).toBe(read.sha256);
  });

  it("an OVA streams its disk member with the OVF's adapter; the digests are of the whole .ova", async () => {
    const { publish, read, digests } = await drain(await inspect(where, "vm.ova"));
    const disk = bytes["ova-disk1.vmdk"]!;
    expect(publish).toMatchObject({ kind: "streamOptimized", adapterType: "paraVirtual", capacityBytes: 8 << 20, length: disk.length });
    expect(read).toEqual({ sha256: sha256(disk), bytes: disk.length });
    expect(digests).toEqual({ sha256: sha256(bytes["vm.ova"]!), md5: md5(bytes["vm.ova"]!), bytes: bytes["vm.ova"]!.length });
  });

  it("a raw disk with an MBR streams as a flat disk of its size (no conversion)", async () => {
    const root = await tmpRoot();
    const { publish, read } = await drain(await inspect(where, "mbr.img"), { diskType: "thin", tmpDir: root });
    expect(publish).toMatchObject({ kind: "flat", diskType: "thin", adapterType: "lsiLogic", capacityBytes: 4 << 20, length: 4 << 20 });
    expect(read.sha256).toBe(sha256(bytes["mbr.img"]!));
    expect(await readdir(root)).toEqual([]);
    expect((await drain(await inspect(where, "mbr.img"))).publish).toMatchObject({ diskType: "preallocated" });
  });

  it("qcow2 is converted to a sparse VMDK of its virtual size and data; the temp folder goes with dispose", async () => {
    const root = await tmpRoot();
    const s = await inspect(where, "disk.qcow2");
    const opened = await openSource(s, { algorithms: ["sha256"], tmpDir: root, adapterType: "paraVirtual" });
    try {
      const [tmp] = await readdir(root);
      const converted = join(root, tmp!, "disk.vmdk");
      expect(await readdir(join(root, tmp!))).toEqual(["disk.vmdk"]);
      await run("qemu-img", ["compare", "-q", "-f", "qcow2", "-F", "vmdk", images.path("disk.qcow2"), converted]);
      const vmdk = await readFile(converted);
      expect(opened.publish).toMatchObject({ kind: "sparse", adapterType: "paraVirtual", capacityBytes: 16 << 20, length: vmdk.length });
      expect(vmdk.toString("latin1", 0, 4)).toBe("KDMV");
      expect(vmdk.toString("latin1")).toContain('ddb.adapterType = "lsilogic"');
      expect(await sha256Of(opened.publish.stream)).toEqual({ sha256: sha256(vmdk), bytes: vmdk.length });
      expect(await opened.digests).toEqual({ sha256: sha256(bytes["disk.qcow2"]!), bytes: bytes["disk.qcow2"]!.length });
    } finally {
      await opened.dispose();
    }
    expect(await readdir(root)).toEqual([]);
    await opened.dispose();
  });

  it("a raw disk that is not whole KiB is converted (vCenter sizes flat disks in KiB), its data kept", async () => {
    const root = await tmpRoot();
    const opened = await openSource(await inspect(where, "odd-mbr.img"), { algorithms: ["sha256"], tmpDir: root, adapterType: "ide" });
    try {
      const [tmp] = await readdir(root);
      const converted = join(root, tmp!, "disk.vmdk");
      await run("qemu-img", ["compare", "-q", "-f", "raw", "-F", "vmdk", images.path("odd-mbr.img"), converted]);
      expect(opened.publish).toMatchObject({ kind: "sparse", adapterType: "ide", capacityBytes: 2049 * 512 });
      expect((await readFile(converted)).toString("latin1")).toContain('ddb.adapterType = "ide"');
      expect((await opened.digests).sha256).toBe(sha256(bytes["mbr.img"]!.subarray(0, 2049 * 512)));
    } finally {
      await opened.dispose();
    }
    expect(await readdir(root)).toEqual([]);
  });

  it("a failed conversion says what qemu-img said, and leaves no temp folder", async () => {
    const bad = Buffer.alloc(1 << 20);
    bytes["disk.qcow2"]!.copy(bad, 0, 0, 512);
    bad.fill(0xee, 40, 512);
    await writeFile(images.path(`bad-${where}.qcow2`), bad);
    const root = await tmpRoot();
    const err = await rejection(openSource(await inspect(where, `bad-${where}.qcow2`), { algorithms: ["sha256"], tmpDir: root }));
    expect(err).toMatchObject({ code: "ConversionFailed", format: "qcow2" });
    expect(err.message).toMatch(/qemu-img could not convert this qcow2 image.*: .+/);
    expect(await readdir(root)).toEqual([]);
  });
});

describe("qemu-img missing", () => {
  it("fails inspect (so preview) with how to install it or convert by hand", async () => {
    for (const where of ["file", "url"] as const) {
      const err = await rejection(inspectSource(spec(where, "disk.qcow2"), { qemuImg: "/nonexistent/qemu-img" }));
      expect(err).toMatchObject({ name: "ConversionToolMissingError", code: "ConversionToolMissing", format: "qcow2" });
      expect(err.message).toContain("apt-get install qemu-utils");
      expect(err.message).toContain("dnf install qemu-img");
      expect(err.message).toContain("brew install qemu");
      expect(err.message).toContain("qemu-img convert -O vmdk -o subformat=streamOptimized");
    }
    // Formats that need no conversion do not need the tool.
    expect((await inspectSource(spec("file", "sparse.vmdk"), { qemuImg: "/nonexistent/qemu-img" })).info.format).toBe("vmdk");
  });

  it("fails openSource before any temp folder", async () => {
    const root = await tmpRoot();
    const err = await rejection(openSource(await inspect("file", "disk.vhd"), { algorithms: ["sha256"], tmpDir: root, qemuImg: "/nonexistent/qemu-img" }));
    expect(err).toMatchObject({ code: "ConversionToolMissing", format: "VHD" });
    expect(await readdir(root)).toEqual([]);
  });
});

describe("a source that changed since inspect", () => {
  it("a rewritten file (new size, or same size and a new mtime) is SourceChanged", async () => {
    await copyFile(images.path("sparse.vmdk"), images.path("changing.vmdk"));
    const s = await inspect("file", "changing.vmdk");
    await utimes(images.path("changing.vmdk"), new Date(), new Date(Date.now() + 5000));
    const err = await rejection(openSource(s, { algorithms: ["sha256"] }));
    expect(err).toMatchObject({ code: "SourceChanged" });
    expect(err.message).toMatch(/changing\.vmdk changed since it was inspected \(.*modified .*\)\. Run again/);
    await copyFile(images.path("stream.vmdk"), images.path("changing.vmdk"));
    expect(await rejection(openSource(await inspect("file", "sparse.vmdk").then(() => s), { algorithms: ["sha256"] }))).toMatchObject({ code: "SourceChanged" });
  });

  it("a descriptor's extent rewritten is SourceChanged", async () => {
    await copyFile(images.path("flat.vmdk"), images.path("chg.vmdk"));
    await copyFile(images.path("flat-flat.vmdk"), images.path("chg-flat.vmdk"));
    const text = (await readFile(images.path("chg.vmdk"), "latin1")).replace('"flat-flat.vmdk"', '"chg-flat.vmdk"');
    await writeFile(images.path("chg.vmdk"), text);
    const s = await inspect("file", "chg.vmdk");
    await utimes(images.path("chg-flat.vmdk"), new Date(), new Date(Date.now() + 5000));
    expect((await rejection(openSource(s, { algorithms: ["sha256"] }))).message).toContain("chg-flat.vmdk: modified");
  });

  it("a URL whose ETag and size changed is SourceChanged", async () => {
    await copyFile(images.path("sparse.vmdk"), images.path("web.vmdk"));
    const s = await inspect("url", "web.vmdk");
    await copyFile(images.path("stream.vmdk"), images.path("web.vmdk"));
    const err = await rejection(openSource(s, { algorithms: ["sha256"] }));
    expect(err).toMatchObject({ code: "SourceChanged" });
    expect(err.message).toMatch(/ETag ".*" → ".*".*size \d+ → \d+/);
  });
});

describe("HTTP", () => {
  it("follows redirects; the fingerprint has the final URL", async () => {
    const s = await inspectSource({ source: http.url("/redirect/3/files/sparse.vmdk") });
    expect(s.fingerprint).toMatchObject({ kind: "url", url: http.url("/files/sparse.vmdk") });
    expect(s.name).toBe(http.url("/redirect/3/files/sparse.vmdk"));
    const { read } = await drain(s);
    expect(read.sha256).toBe(sha256(bytes["sparse.vmdk"]!));
  });

  it("gives up after 10 redirects", async () => {
    const err = await rejection(inspectSource({ source: http.url("/redirect/11/files/sparse.vmdk") }));
    expect(err).toMatchObject({ code: "SourceFetchFailed", status: 302 });
    expect(err.message).toContain("more than 10 redirects");
  });

  it("sends the headers on every request, but credentials not to another origin", async () => {
    const headers = { Authorization: http.authorization, "X-Trace": "t1" };
    const viaRedirect = await inspectSource({ source: http.url("/redirect/1/auth/sparse.vmdk"), headers });
    expect(viaRedirect.info.format).toBe("vmdk");
    const target = other.url("/files/sparse.vmdk");
    const before = other.requests.length;
    const s = await inspectSource({ source: http.url(`/to?url=${encodeURIComponent(target)}`), headers });
    expect(s.fingerprint).toMatchObject({ url: target });
    expect(http.requests.at(-1)?.headers.authorization).toBe(http.authorization);
    const there = other.requests.slice(before);
    expect(there).toHaveLength(1);
    expect(there[0]!.headers.authorization).toBeUndefined();
    expect(there[0]!.headers["x-trace"]).toBe("t1");
  });

  it("401 without credentials says to give headers; with them, inspect, digest and open work", async () => {
    const url = http.url("/auth/flat.vmdk");
    const err = await rejection(inspectSource({ source: url }));
    expect(err).toMatchObject({ name: "SourceFetchError", code: "SourceFetchFailed", status: 401 });
    expect(err.message).toMatch(/HTTP 401.*`headers`/);
    const s = await inspectSource({ source: url, headers: { Authorization: http.authorization } });
    expect(s.sizeBytes).toBe(bytes["flat.vmdk"]!.length + (4 << 20));
    expect((await digestSource(s, ["sha256"])).sha256).toBe(sha256(bytes["flat-flat.vmdk"]!));
    expect((await drain(s)).read.sha256).toBe(sha256(bytes["flat-flat.vmdk"]!));
  });

  it("the URL in messages has no userinfo and no query values; userinfo becomes Basic auth", async () => {
    const u = new URL(http.url("/files/nothing-here.vmdk?token=abc&x=1"));
    u.username = "me";
    u.password = "pw";
    const err = await rejection(inspectSource({ source: u.toString() }));
    expect(err).toMatchObject({ code: "SourceNotFound" });
    expect(err.message).toContain(`${http.url("/files/nothing-here.vmdk")}?token=…&x=…: HTTP 404`);
    expect(err.message).not.toMatch(/abc|pw/);
    expect(http.requests.at(-1)?.headers.authorization).toBe(`Basic ${Buffer.from("me:pw").toString("base64")}`);
  });

  it("404 is SourceNotFound, 500 a fetch error with the status, a refused connection a fetch error", async () => {
    expect(await rejection(inspectSource({ source: http.url("/files/missing.vmdk") }))).toMatchObject({ code: "SourceNotFound" });
    expect(await rejection(inspectSource({ source: http.url("/error/410") }))).toMatchObject({ code: "SourceNotFound" });
    const e500 = await rejection(inspectSource({ source: http.url("/error/500") }));
    expect(e500).toMatchObject({ code: "SourceFetchFailed", status: 500 });
    expect(e500.message).toContain("HTTP 500 (something went wrong)");
    const closed = await HttpSource.start(images.dir);
    const url = closed.url("/files/sparse.vmdk");
    await closed.close();
    expect(await rejection(inspectSource({ source: url }))).toMatchObject({ code: "SourceFetchFailed", status: undefined });
  });

  it("a server that ignores Range: inspect reads only the prefix and drops the connection", async () => {
    const before = http.requests.length;
    const s = await inspectSource({ source: http.url("/norange/stream.vmdk") });
    expect(s).toMatchObject({ info: { format: "vmdk" }, sizeBytes: bytes["stream.vmdk"]!.length });
    expect(bytes["stream.vmdk"]!.length).toBeGreaterThan(1 << 20);
    await http.requests[before]!.socketClosed;
  });

  it("goes through the proxy HTTP_PROXY names", async () => {
    const saved = { HTTP_PROXY: process.env.HTTP_PROXY, NO_PROXY: process.env.NO_PROXY, no_proxy: process.env.no_proxy };
    const target = other.url("/files/cd.iso");
    const [proxyBefore, otherBefore] = [http.requests.length, other.requests.length];
    process.env.HTTP_PROXY = http.origin;
    process.env.NO_PROXY = process.env.no_proxy = "";
    try {
      const s = await inspectSource({ source: target });
      expect(s.info.format).toBe("iso");
      expect(http.requests.slice(proxyBefore).map((r) => r.target)).toEqual([target]);
      expect(other.requests.length).toBe(otherBefore);
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    await inspectSource({ source: target });
    expect(other.requests.length).toBe(otherBefore + 1);
  });

  it("an abort signal stops a download in flight", async () => {
    const abort = new AbortController();
    const opened = await openSource(await inspect("url", "sparse.vmdk"), { algorithms: ["sha256"], signal: abort.signal });
    await opened.publish.stream[Symbol.asyncIterator]().next();
    abort.abort(new Error("stop here"));
    expect((await rejection(sha256Of(opened.publish.stream))).message).toMatch(/stop here|aborted/);
    await rejection(opened.digests);
    await opened.dispose();
  });

  it("a connection dropped mid-body fails the stream and the digests", async () => {
    const s = await inspectSource({ source: http.url("/drop/200000/stream.vmdk") });
    const opened = await openSource(s, { algorithms: ["sha256"] });
    const read = await rejection(sha256Of(opened.publish.stream));
    expect(read).toMatchObject({ code: "SourceFetchFailed" });
    expect(read.message).toMatch(/download broke off after 200000 of \d+ bytes/);
    expect(await rejection(opened.digests)).toMatchObject({ code: "SourceFetchFailed" });
    await opened.dispose();
  });

  it("a stream destroyed early closes its connection, and the digests reject", async () => {
    const before = http.requests.length;
    const opened = await openSource(await inspect("url", "sparse.vmdk"), { algorithms: ["sha256"] });
    const get = http.requests.slice(before).find((r) => r.method === "GET" && r.headers.range === undefined)!;
    for await (const _ of opened.publish.stream) break;
    await opened.dispose();
    await get.socketClosed;
    await rejection(opened.digests);
  });
});

describe("local files", () => {
  it("a stream destroyed early closes the file by dispose", async () => {
    const open = async () => {
      const fds = await readdir("/proc/self/fd");
      const targets = await Promise.all(fds.map((fd) => readlink(`/proc/self/fd/${fd}`).catch(() => "")));
      return targets.filter((t) => t.startsWith(images.dir));
    };
    expect(await open()).toEqual([]);
    for (const name of ["sparse.vmdk", "flat.vmdk", "vm.ova"]) {
      const opened = await openSource(await inspect("file", name), { algorithms: ["sha256"] });
      await opened.publish.stream[Symbol.asyncIterator]().next();
      expect((await open()).length).toBeGreaterThan(0);
      opened.publish.stream.destroy();
      await opened.dispose();
      expect(await open()).toEqual([]);
      await rejection(opened.digests);
    }
  });

  it("a missing file names the absolute path and where relative paths start", async () => {
    const rel = relative(process.cwd(), images.path("nope.vmdk"));
    const err = await rejection(inspectSource({ source: rel }));
    expect(err).toMatchObject({ name: "SourceNotFoundError", code: "SourceNotFound" });
    expect(err.message).toContain(images.path("nope.vmdk"));
    expect(err.message).toContain(`relative path is taken from the program's directory, ${process.cwd()}`);
  });

  it("detection errors come through typed, for files and URLs", async () => {
    await writeFile(images.path("empty.img"), "");
    await writeFile(images.path("data.gz"), Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0]));
    await writeFile(images.path("lonely.vmdk"), (await readFile(images.path("flat.vmdk"), "latin1")).replace('"flat-flat.vmdk"', '"gone-flat.vmdk"'));
    for (const where of ["file", "url"] as const) {
      expect(await rejection(inspect(where, "empty.img"))).toMatchObject({ code: "InvalidImage", reason: "empty" });
      expect(await rejection(inspect(where, "data.gz"))).toMatchObject({ code: "UnsupportedImage", found: "gzip-compressed data" });
      expect(await rejection(inspect(where, "lonely.vmdk"))).toMatchObject({ code: "MissingExtent", missing: ["gone-flat.vmdk"] });
      const unknown = await rejection(inspect(where, "unknown.bin"));
      expect(unknown).toMatchObject({ code: "UnsupportedImage" });
      expect(unknown.message).toContain("An unrecognized file is not uploaded as a disk");
      expect(unknown.message).toContain("qemu-img convert -f raw -O vmdk -o subformat=streamOptimized");
    }
    expect(await rejection(inspectSource({ source: await mkdtemp(join(images.dir, "d-")) }))).toMatchObject({ code: "UnsupportedImage" });
  });
});

describe("a flat descriptor's extents given apart (SourceSpec.extents)", () => {
  /** The descriptor alone in a folder of its own: its extent line names a file that is not beside it. */
  async function lonely(): Promise<string> {
    const dir = images.path(`lonely-${Math.random().toString(36).slice(2)}`);
    await mkdir(dir);
    await copyFile(images.path("flat.vmdk"), join(dir, "flat.vmdk"));
    return join(dir, "flat.vmdk");
  }

  it.each([
    ["a file descriptor, a file extent", "file", "file"],
    ["a file descriptor, a URL extent (e.g. presigned)", "file", "url"],
    ["a URL descriptor, a URL extent", "url", "url"],
  ] as const)("%s: inspected, hashed and streamed from where they are", async (_what, descriptorAt, extentAt) => {
    const descriptor = descriptorAt === "file" ? await lonely() : http.url("/files/flat.vmdk");
    const extent = extentAt === "file" ? images.path("flat-flat.vmdk") : other.url("/files/flat-flat.vmdk");
    // Beside it, nothing: without the extents given this is a missing extent.
    if (descriptorAt === "file") expect(await rejection(inspectSource({ source: descriptor }))).toMatchObject({ code: "MissingExtent" });
    const s: SourceSpec = { source: descriptor, extents: [extent] };
    const inspected = await inspectSource(s);
    expect(inspected.info.format).toBe("vmdkDescriptor");
    expect(inspected.fingerprint.extents).toHaveLength(1);
    expect(inspected.sizeBytes).toBe(bytes["flat.vmdk"]!.length + bytes["flat-flat.vmdk"]!.length);
    expect((await digestSource(inspected, [])).sha256).toBe(sha256(bytes["flat-flat.vmdk"]!));
    const opened = await openSource(inspected, { algorithms: ["sha256"] });
    try {
      expect(opened.publish.kind).toBe("flat");
      expect(await sha256Of(opened.publish.stream)).toEqual({ sha256: sha256(bytes["flat-flat.vmdk"]!), bytes: bytes["flat-flat.vmdk"]!.length });
      expect((await opened.digests).sha256).toBe(sha256(bytes["flat-flat.vmdk"]!));
    } finally {
      await opened.dispose();
    }
  });

  it("refuses the wrong number of extents, a missing one, a short one, and extents for anything but a flat descriptor", async () => {
    const descriptor = await lonely();
    expect((await rejection(inspectSource({ source: descriptor, extents: [images.path("flat-flat.vmdk"), images.path("flat-flat.vmdk")] }))).message).toMatch(/1 extent with 2 extent sources given/);
    expect(await rejection(inspectSource({ source: descriptor, extents: [images.path("nope-flat.vmdk")] }))).toMatchObject({ code: "MissingExtent" });
    expect(await rejection(inspectSource({ source: descriptor, extents: [other.url("/files/nope-flat.vmdk")] }))).toMatchObject({ code: "MissingExtent" });
    expect((await rejection(inspectSource({ source: descriptor, extents: [images.path("cd.iso")] }))).message).toMatch(/truncated/);
    expect(await rejection(inspectSource({ source: images.path("sparse.vmdk"), extents: [images.path("flat-flat.vmdk")] }))).toMatchObject({ code: "UnsupportedImage" });
  });

  it("sees an extent rewritten between inspect and open", async () => {
    const descriptor = await lonely();
    const extent = join(descriptor, "..", "moved-flat.vmdk");
    await copyFile(images.path("flat-flat.vmdk"), extent);
    const inspected = await inspectSource({ source: descriptor, extents: [extent] });
    await utimes(extent, new Date(), new Date(Date.now() + 5000));
    const err = await rejection(openSource(inspected, { algorithms: [] }));
    expect(err).toMatchObject({ code: "SourceChanged" });
    expect(err.message).toContain("moved-flat.vmdk");
  });
});
