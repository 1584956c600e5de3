// The datastore image cache against a private simulator, with real images made by
// qemu-img: each disk type published and read back (files, sizes, descriptor, the
// disk's bytes), a cache hit that reads nothing, a checksum mismatch and a cut upload
// that leave nothing behind, two writers racing, the server-side copy to a second
// datastore, listing, removal and the staging sweep.
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, readFile, writeFile } from "node:fs/promises";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import { DatastorePath, fileExists, listFolder, makeDirectory } from "../../provider/vsphere/datastore.js";
import { FileNotFoundFault, UploadIncompleteError } from "../../provider/vsphere/errors.js";
import { cachedImages, cacheLocation, copyToDatastore, ensureSizedBase, removeCachedImage, sweepStaging } from "../../provider/vsphere/image-cache.js";
import { ChecksumMismatchError } from "../../provider/vsphere/image-errors.js";
import { addHolder, holdersOf, readHolders, removeHolder } from "../../provider/vsphere/image-holders.js";
import { publishImage, publishSourceOf, type PublishOptions, type PublishResult } from "../../provider/vsphere/image-publish.js";
import { flatExtentsStream, sniffImageFile } from "../../provider/vsphere/image-stream.js";
import { getCluster, getDatacenter, listVms, type Cluster, type Datacenter } from "../../provider/vsphere/inventory.js";
import { download, upload } from "../../provider/vsphere/transfer.js";
import { NfcImportError } from "../../provider/vsphere/nfc-import.js";
import { openOva } from "../../provider/vsphere/ova.js";
import { ImageDir, ovfText, qemuImg } from "../support/images.js";
import { simOptions } from "../support/clients.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";
import { rejection } from "../support/rejection.js";

const MiB = 2 ** 20;
const PREFIX = "cache";

let sim: Vcsim;
let client: VimClient;
let other: VimClient;
let dc: Datacenter;
let cluster: Cluster;
let images: ImageDir;
let DS0: string;
let DS1: string;

beforeAll(async () => {
  images = await ImageDir.create();
  sim = await startVcsim({ clusters: 1, hosts: 1, datastores: 2, nfcReadyMs: 50 });
  [client, other] = await Promise.all([VimClient.connect(simOptions(sim)), VimClient.connect(simOptions(sim))]);
  dc = await getDatacenter(client);
  cluster = await getCluster(client, dc, sim.info.inventory.datacenters[0]!.clusters[0]!.name);
  [DS0, DS1] = sim.info.inventory.datacenters[0]!.datastores.filter((d) => d.startsWith("LocalDS_")) as [string, string];
});
afterAll(async () => {
  await client?.close();
  await other?.close();
  await sim?.stop();
  await images?.cleanup();
});

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

async function fileSha(path: string): Promise<string> {
  return sha256(await readFile(path));
}

/** The bytes of a datastore file. */
async function fetchBytes(path: DatastorePath, c = client): Promise<Buffer> {
  const d = await download(c, dc, path);
  const chunks: Buffer[] = [];
  for await (const chunk of d.stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Local image → publishImage, as the Image resource will call it. */
async function publishFile(path: string, imageId: string, opts: Partial<PublishOptions> & { via?: VimClient } = {}): Promise<PublishResult> {
  const sniffed = await sniffImageFile(path);
  const flat = sniffed.extents.length
    ? { stream: flatExtentsStream(sniffed.extents), length: sniffed.extents.reduce((n, e) => n + e.lengthBytes, 0) }
    : undefined;
  const source = publishSourceOf(sniffed, { name: path, ...(flat ? { flat } : {}) });
  const { via, ...rest } = opts;
  return publishImage(via ?? client, {
    datacenter: dc,
    datastore: DS0,
    cachePrefix: PREFIX,
    imageId,
    source,
    resourcePool: cluster.resourcePool,
    ...rest,
  });
}

/** Names in `[ds] vmware_temp` (none when it does not exist). */
async function staging(ds = DS0): Promise<string[]> {
  try {
    return (await listFolder(client, dc, new DatastorePath(ds, "vmware_temp"))).map((e) => e.name);
  } catch (err) {
    if (err instanceof FileNotFoundFault) return [];
    throw err;
  }
}

/** The disk's bytes as qemu-img reads them (what a flat extent must hold). */
async function rawSha(vmdk: string): Promise<string> {
  const raw = `${vmdk}.raw`;
  await qemuImg("convert", "-f", "vmdk", "-O", "raw", vmdk, raw);
  return fileSha(raw);
}

async function cachedFiles(imageId: string, ds = DS0): Promise<Record<string, number | undefined>> {
  const found = (await cachedImages(client, dc, ds, PREFIX)).find((i) => i.imageId === imageId);
  return Object.fromEntries((found?.files ?? []).map((f) => [f.name, f.size]));
}

describe("layout", () => {
  it("puts an image at [ds] <prefix>_base/<id>/<id>.vmdk (.iso), _base without a prefix, and refuses unsafe ids", () => {
    expect(cacheLocation("ds1", "pfx", "abc", "disk").disk.toString()).toBe("[ds1] pfx_base/abc/abc.vmdk");
    expect(cacheLocation("ds1", "", "abc", "iso").disk.toString()).toBe("[ds1] _base/abc/abc.iso");
    for (const bad of ["", "../x", "a/b", ".hidden", "ts-2024-01-01", "a b", "x".repeat(129)]) {
      expect(() => cacheLocation("ds1", "", bad, "disk"), bad).toThrow();
    }
    expect(() => cacheLocation("ds1", "a/b", "abc", "disk")).toThrow();
  });
});

describe("publish by disk type", () => {
  it("sparse: uploaded as tmp-sparse.vmdk, copied to a flat <id>.vmdk holding the disk's bytes, nothing else left", async () => {
    const vmdk = await images.convertedVmdk("sparse.vmdk", "monolithicSparse", { adapter: "ide", sizeMiB: 8, dataMiB: 3 });
    const r = await publishFile(vmdk, "sparse1", { checksums: ["sha256", "md5"] });
    expect(r).toMatchObject({ alreadyCached: false, diskType: "sparse", adapterType: "ide", capacityBytes: 8 * MiB, sha256: await fileSha(vmdk) });
    expect(r.md5).toBe(createHash("md5").update(await readFile(vmdk)).digest("hex"));
    expect(r.paths.disk.toString()).toBe(`[${DS0}] ${PREFIX}_base/sparse1/sparse1.vmdk`);
    const files = await cachedFiles("sparse1");
    expect(Object.keys(files).sort()).toEqual(["sparse1-flat.vmdk", "sparse1.vmdk"]);
    expect(files["sparse1-flat.vmdk"]).toBe(8 * MiB);
    const descriptor = (await fetchBytes(r.paths.disk)).toString("utf8");
    expect(descriptor).toMatch(/^RW 16384 (VMFS|FLAT) "sparse1-flat.vmdk"/m);
    expect(sha256(await fetchBytes(r.paths.folder.join("sparse1-flat.vmdk")))).toBe(await rawSha(vmdk));
    expect(await staging()).toEqual([]);
  });

  it("flat: vCenter's descriptor of the right capacity and adapter, the -flat extent replaced by the image's bytes", async () => {
    const desc = await images.flatVmdk("flat.vmdk", { adapter: "lsilogic", sizeMiB: 4 });
    const fh = await open(images.path("flat-flat.vmdk"), "r+");
    await fh.write(randomBytes(MiB), 0, MiB, 512 * 1024);
    await fh.close();
    const r = await publishFile(desc, "flat1");
    expect(r).toMatchObject({ alreadyCached: false, diskType: "preallocated", adapterType: "lsiLogic", capacityBytes: 4 * MiB, bytes: 4 * MiB });
    expect(r.sha256).toBe(await fileSha(images.path("flat-flat.vmdk")));
    const files = await cachedFiles("flat1");
    expect(files).toEqual({ "flat1.vmdk": expect.any(Number), "flat1-flat.vmdk": 4 * MiB });
    const descriptor = (await fetchBytes(r.paths.disk)).toString("utf8");
    expect(descriptor).toMatch(/^RW 8192 (VMFS|FLAT) "flat1-flat.vmdk"/m);
    expect(descriptor).toMatch(/ddb\.adapterType = "lsilogic"/);
    expect(sha256(await fetchBytes(r.paths.folder.join("flat1-flat.vmdk")))).toBe(r.sha256);
    expect(await staging()).toEqual([]);
  });

  it("flat: a lost answer to CreateVirtualDisk_Task is settled by the descriptor in the private staging folder", async () => {
    const desc = await images.flatVmdk("flat2.vmdk", { adapter: "ide", sizeMiB: 2 });
    const rule = await sim.control.addRule({ kind: "reset", method: "CreateVirtualDisk_Task", phase: "after" });
    const r = await publishFile(desc, "flat2");
    expect((await sim.control.rule(rule.id)).fired).toBe(1);
    expect(r).toMatchObject({ alreadyCached: false, adapterType: "ide" });
    expect(await cachedFiles("flat2")).toEqual({ "flat2.vmdk": expect.any(Number), "flat2-flat.vmdk": 2 * MiB });
    expect(await staging()).toEqual([]);
  });

  it("flat: a twoGbMaxExtentFlat descriptor's extents are streamed in order into vCenter's one-extent disk", async () => {
    const desc = await images.flatVmdk("split.vmdk", { adapter: "buslogic", sizeMiB: 3, subformat: "twoGbMaxExtentFlat" });
    const sniffed = await sniffImageFile(desc);
    expect(sniffed.extents.length).toBeGreaterThan(0);
    const r = await publishFile(desc, "split1");
    expect(r).toMatchObject({ alreadyCached: false, adapterType: "busLogic", capacityBytes: 3 * MiB, bytes: 3 * MiB });
    sniffed.stream.destroy();
    const descriptor = (await fetchBytes(r.paths.disk)).toString("utf8");
    expect(descriptor).toMatch(/ddb\.adapterType = "buslogic"/);
    expect(await cachedFiles("split1")).toEqual({ "split1.vmdk": expect.any(Number), "split1-flat.vmdk": 3 * MiB });
  });

  it("progress is told monotonically and ends at the length", async () => {
    const iso = await images.iso("progress.iso");
    const seen: Array<[number, number]> = [];
    const r = await publishFile(iso, "progress1", { onProgress: (sent, total) => seen.push([sent, total]) });
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every(([, total]) => total === r.bytes)).toBe(true);
    expect(seen.map(([sent]) => sent)).toEqual([...seen.map(([sent]) => sent)].sort((a, b) => a - b));
    expect(seen.at(-1)![0]).toBe(r.bytes);
  });

  it("flat thin: a thin descriptor from vCenter, paraVirtual written as lsilogic; a flat of the wrong length is refused before anything is staged", async () => {
    const bytes = randomBytes(2 * MiB);
    const r = await publishImage(client, {
      datacenter: dc,
      datastore: DS0,
      cachePrefix: PREFIX,
      imageId: "thin1",
      source: { kind: "flat", diskType: "thin", adapterType: "paraVirtual", capacityBytes: 2 * MiB, stream: Readable.from([bytes]), length: bytes.length },
    });
    expect(r).toMatchObject({ alreadyCached: false, diskType: "thin", adapterType: "paraVirtual", sha256: sha256(bytes) });
    const descriptor = (await fetchBytes(r.paths.disk)).toString("utf8");
    expect(descriptor).toMatch(/ddb\.thinProvisioned = "1"/);
    expect(descriptor).toMatch(/ddb\.adapterType = "lsilogic"/);
    expect(sha256(await fetchBytes(r.paths.folder.join("thin1-flat.vmdk")))).toBe(sha256(bytes));
    const short = Readable.from([bytes.subarray(0, MiB)]);
    await sim.control.resetStats();
    const err = await rejection(
      publishImage(client, {
        datacenter: dc,
        datastore: DS0,
        cachePrefix: PREFIX,
        imageId: "thin2",
        source: { kind: "flat", diskType: "thin", adapterType: "lsiLogic", capacityBytes: 2 * MiB, stream: short, length: MiB },
      }),
    );
    expect(err.message).toMatch(/not the disk's capacity/);
    expect(short.destroyed).toBe(true);
    expect((await sim.control.stats()).soapRequests).toBe(0);
    expect(await fileExists(client, dc, cacheLocation(DS0, PREFIX, "thin2", "disk").folder)).toBe(false);
    expect(await staging()).toEqual([]);
  });

  it("ISO: PUT as <id>.iso, read back byte for byte", async () => {
    const iso = await images.iso("cd.iso", "CACHEISO");
    const r = await publishFile(iso, "iso1");
    expect(r).toMatchObject({ alreadyCached: false, diskType: undefined });
    expect(r.paths.disk.toString()).toBe(`[${DS0}] ${PREFIX}_base/iso1/iso1.iso`);
    expect(sha256(await fetchBytes(r.paths.disk))).toBe(await fileSha(iso));
    const listed = (await cachedImages(client, dc, DS0, PREFIX)).find((i) => i.imageId === "iso1");
    expect(listed).toMatchObject({ kind: "iso", bytes: (await readFile(iso)).length });
    expect(await staging()).toEqual([]);
  });

  it("streamOptimized: imported through the NFC lease, its disk moved into the cache as a flat disk, no shadow VM left", async () => {
    const vmdk = await images.convertedVmdk("so.vmdk", "streamOptimized", { adapter: "lsilogic", sizeMiB: 8, dataMiB: 3 });
    const before = (await listVms(client, client.serviceContent.rootFolder)).length;
    const r = await publishFile(vmdk, "so1");
    expect(r).toMatchObject({ alreadyCached: false, diskType: "streamOptimized", adapterType: "lsiLogic", capacityBytes: 8 * MiB, sha256: await fileSha(vmdk) });
    const files = await cachedFiles("so1");
    expect(Object.keys(files).sort()).toEqual(["so1-flat.vmdk", "so1.vmdk"]);
    expect(sha256(await fetchBytes(r.paths.folder.join("so1-flat.vmdk")))).toBe(await rawSha(vmdk));
    expect((await listVms(client, client.serviceContent.rootFolder)).length).toBe(before);
    const root = (await listFolder(client, dc, new DatastorePath(DS0, ""))).map((e) => e.name);
    expect(root.filter((n) => n.startsWith("image-so1"))).toEqual([]);
    expect(await staging()).toEqual([]);
  });

  it("OVA: the disk the .ovf names, streamed out of the tar into the NFC import, with the OVF's controller as adapter", async () => {
    await images.convertedVmdk("ova-disk.vmdk", "streamOptimized", { adapter: "lsilogic", sizeMiB: 8, dataMiB: 2 });
    const diskBytes = await readFile(images.path("ova-disk.vmdk"));
    await writeFile(images.path("vm.ovf"), ovfText({ diskFile: "ova-disk.vmdk", diskFileSize: diskBytes.length, capacityBytes: 8 * MiB, controller: { resourceType: 6, subType: "VirtualSCSI" } }));
    const ova = await images.tar("vm.ova", ["vm.ovf", "ova-disk.vmdk"]);
    const opened = await openOva(createReadStream(ova), { source: ova });
    const source = publishSourceOf(opened.disk, { name: ova, adapterType: opened.disk.adapterType });
    const r = await publishImage(client, { datacenter: dc, datastore: DS0, cachePrefix: PREFIX, imageId: "ova1", source, resourcePool: cluster.resourcePool });
    expect(r).toMatchObject({ alreadyCached: false, diskType: "streamOptimized", adapterType: "paraVirtual", bytes: diskBytes.length, sha256: sha256(diskBytes) });
    expect(sha256(await fetchBytes(r.paths.folder.join("ova1-flat.vmdk")))).toBe(await rawSha(images.path("ova-disk.vmdk")));
    expect(await staging()).toEqual([]);
  });
});

describe("safety", () => {
  let vmdk: string;
  beforeAll(async () => {
    vmdk = await images.convertedVmdk("safe.vmdk", "monolithicSparse", { adapter: "lsilogic", sizeMiB: 8, dataMiB: 4 });
  });

  it("a cache hit reads nothing and uploads nothing", async () => {
    await publishFile(vmdk, "hit1");
    await sim.control.resetStats();
    const sniffed = await sniffImageFile(vmdk);
    const source = publishSourceOf(sniffed);
    const r = await publishImage(client, { datacenter: dc, datastore: DS0, cachePrefix: PREFIX, imageId: "hit1", source });
    expect(r).toMatchObject({ alreadyCached: true, bytes: 0, sha256: undefined });
    expect(sniffed.stream.destroyed).toBe(true);
    const stats = await sim.control.stats();
    expect(stats.uploads).toBe(0);
    expect(stats.methods["CopyVirtualDisk_Task"] ?? 0).toBe(0);
  });

  it("a checksum mismatch publishes nothing, names both values, and leaves no staging", async () => {
    const wrong = "0".repeat(64);
    const err = await rejection(publishFile(vmdk, "bad1", { expected: { algorithm: "sha256", hex: wrong } }));
    expect(err).toBeInstanceOf(ChecksumMismatchError);
    expect(err.message).toContain(wrong);
    expect(err.message).toContain(await fileSha(vmdk));
    expect(await fileExists(client, dc, cacheLocation(DS0, PREFIX, "bad1", "disk").folder)).toBe(false);
    expect(await staging()).toEqual([]);
  });

  it("a matching declared checksum publishes", async () => {
    const r = await publishFile(vmdk, "good1", { expected: { algorithm: "md5", hex: createHash("md5").update(await readFile(vmdk)).digest("hex") } });
    expect(r.alreadyCached).toBe(false);
  });

  it("an upload cut after 1 MiB leaves nothing in the cache or vmware_temp, and a re-run succeeds", async () => {
    // Scoped to staging uploads: an earlier test's aborted upload must not take the rule.
    await sim.control.addRule({ kind: "cutUpload", afterBytes: MiB, path: "/folder/vmware_temp/" });
    const err = await rejection(publishFile(vmdk, "cut1"));
    expect(err).toBeInstanceOf(UploadIncompleteError);
    expect(await fileExists(client, dc, cacheLocation(DS0, PREFIX, "cut1", "disk").folder)).toBe(false);
    expect(await staging()).toEqual([]);
    const r = await publishFile(vmdk, "cut1");
    expect(r.alreadyCached).toBe(false);
    expect(Object.keys(await cachedFiles("cut1")).sort()).toEqual(["cut1-flat.vmdk", "cut1.vmdk"]);
  });

  it("two processes publishing one image at once end with one good copy, the loser told it was cached, no staging left", async () => {
    await sim.control.resetStats();
    const [a, b] = await Promise.all([publishFile(vmdk, "race1"), publishFile(vmdk, "race1", { via: other })]);
    expect([a.alreadyCached, b.alreadyCached].sort()).toEqual([false, true]);
    const stats = await sim.control.stats();
    // Both staged (neither saw the other's copy when it started): the FileAlreadyExists rule decided.
    expect(stats.uploads).toBe(2);
    expect(stats.methods["MoveDatastoreFile_Task"]).toBe(2);
    const files = await cachedFiles("race1");
    expect(files).toEqual({ "race1.vmdk": expect.any(Number), "race1-flat.vmdk": 8 * MiB });
    expect(sha256(await fetchBytes(a.paths.folder.join("race1-flat.vmdk")))).toBe(await rawSha(vmdk));
    expect(await staging()).toEqual([]);
  });

  it("publishes of one image on one client take turns: one upload, the second finds it cached", async () => {
    await sim.control.resetStats();
    const [a, b] = await Promise.all([publishFile(vmdk, "turns1"), publishFile(vmdk, "turns1")]);
    expect([a.alreadyCached, b.alreadyCached].sort()).toEqual([false, true]);
    expect((await sim.control.stats()).uploads).toBe(1);
    expect(await staging()).toEqual([]);
  });

  it("a failed server-side step (CopyVirtualDisk_Task) leaves no staging and no cache folder", async () => {
    await sim.control.addRule({ kind: "taskError", method: "CopyVirtualDisk_Task", fault: "CannotCreateFile", message: "disk full" });
    const err = await rejection(publishFile(vmdk, "fail1"));
    expect((err as { code?: string }).code).toBe("CannotCreateFile");
    expect(await fileExists(client, dc, cacheLocation(DS0, PREFIX, "fail1", "disk").folder)).toBe(false);
    expect(await staging()).toEqual([]);
  });

  it("a clean-up that fails is logged, not thrown over the real error; sweepStaging removes what it left", async () => {
    const events: Array<{ event: string; level: string; message: string }> = [];
    const logged = await VimClient.connect(simOptions(sim, { onLog: (e) => events.push(e) }));
    try {
      await sim.control.addRule({ kind: "taskError", method: "DeleteDatastoreFile_Task", fault: "CannotDeleteFile", message: "busy" });
      const err = await rejection(publishFile(vmdk, "leak1", { via: logged, expected: { algorithm: "sha256", hex: "1".repeat(64) } }));
      expect(err).toBeInstanceOf(ChecksumMismatchError);
      const cleanup = events.filter((e) => e.event === "cleanup");
      expect(cleanup).toHaveLength(1);
      expect(cleanup[0]).toMatchObject({ level: "warn" });
      expect(cleanup[0]!.message).toMatch(/vmware_temp\/[0-9a-f-]{36}/);
      const left = await staging();
      expect(left).toHaveLength(1);
      const swept = await sweepStaging(client, dc, DS0, 60_000, new Date(Date.now() + 120_000));
      expect(swept.map((p) => p.basename)).toEqual(left);
      expect(await staging()).toEqual([]);
    } finally {
      await logged.close();
    }
  });

  it("streamOptimized: a checksum mismatch leaves no shadow VM, no import folder, no staging and no cache folder", async () => {
    const so = await images.convertedVmdk("so-bad.vmdk", "streamOptimized", { adapter: "ide", sizeMiB: 8, dataMiB: 1 });
    const before = (await listVms(client, client.serviceContent.rootFolder)).length;
    const err = await rejection(publishFile(so, "sobad1", { expected: { algorithm: "sha256", hex: "2".repeat(64) } }));
    expect(err).toBeInstanceOf(ChecksumMismatchError);
    expect((await listVms(client, client.serviceContent.rootFolder)).length).toBe(before);
    const root = (await listFolder(client, dc, new DatastorePath(DS0, ""))).map((e) => e.name);
    expect(root.filter((n) => n.startsWith("image-sobad1"))).toEqual([]);
    expect(await fileExists(client, dc, cacheLocation(DS0, PREFIX, "sobad1", "disk").folder)).toBe(false);
    expect(await staging()).toEqual([]);
  });

  it("a lost answer to the publishing move is settled by looking: the image is published", async () => {
    const rule = await sim.control.addRule({ kind: "reset", method: "MoveDatastoreFile_Task", phase: "after" });
    const r = await publishFile(vmdk, "lost1");
    expect(r.alreadyCached).toBe(false);
    expect(Object.keys(await cachedFiles("lost1")).sort()).toEqual(["lost1-flat.vmdk", "lost1.vmdk"]);
    expect((await sim.control.rule(rule.id)).fired).toBe(1);
    expect(await staging()).toEqual([]);
  });

  it("streamOptimized: an NFC upload cut after 1 MiB leaves no shadow VM, no staging, no cache folder; a re-run succeeds", async () => {
    const so = await images.convertedVmdk("so-cut.vmdk", "streamOptimized", { adapter: "lsilogic", sizeMiB: 8, dataMiB: 6 });
    const before = (await listVms(client, client.serviceContent.rootFolder)).length;
    await sim.control.addRule({ kind: "cutUpload", afterBytes: MiB, path: "/nfc/" });
    const err = await rejection(publishFile(so, "socut1"));
    expect(err).toBeInstanceOf(NfcImportError);
    expect((err as NfcImportError).stage).toBe("upload");
    expect((await listVms(client, client.serviceContent.rootFolder)).length).toBe(before);
    const root = (await listFolder(client, dc, new DatastorePath(DS0, ""))).map((e) => e.name);
    expect(root.filter((n) => n.startsWith("image-socut1"))).toEqual([]);
    expect(await fileExists(client, dc, cacheLocation(DS0, PREFIX, "socut1", "disk").folder)).toBe(false);
    expect(await staging()).toEqual([]);
    const r = await publishFile(so, "socut1");
    expect(r.alreadyCached).toBe(false);
    expect(sha256(await fetchBytes(r.paths.folder.join("socut1-flat.vmdk")))).toBe(await rawSha(so));
  });

  it("a cache folder without its disk gets the staged disk moved into it", async () => {
    const loc = cacheLocation(DS0, PREFIX, "hollow1", "disk");
    await makeDirectory(client, dc, loc.folder.join("ts-2024-01-01-00-00-00"));
    const r = await publishFile(vmdk, "hollow1");
    expect(r.alreadyCached).toBe(false);
    expect(Object.keys(await cachedFiles("hollow1")).sort()).toEqual(["hollow1-flat.vmdk", "hollow1.vmdk"]);
    expect(await staging()).toEqual([]);
  });
});

describe("copy to another datastore", () => {
  it("copies server-side, once under 5 concurrent callers, and publishes atomically there", async () => {
    const vmdk = await images.convertedVmdk("copy.vmdk", "monolithicSparse", { adapter: "ide", sizeMiB: 8, dataMiB: 2 });
    await publishFile(vmdk, "copy1");
    await sim.control.resetStats();
    const results = await Promise.all(
      Array.from({ length: 5 }, () => copyToDatastore(client, { datacenter: dc, fromDatastore: DS0, datastore: DS1, cachePrefix: PREFIX, imageId: "copy1", kind: "disk" })),
    );
    const stats = await sim.control.stats();
    expect(stats.uploads).toBe(0);
    expect(stats.methods["CopyVirtualDisk_Task"]).toBe(1);
    expect(results.every((r) => r.alreadyCached === false && r.paths.disk.toString() === `[${DS1}] ${PREFIX}_base/copy1/copy1.vmdk`)).toBe(true);
    expect(await cachedFiles("copy1", DS1)).toEqual({ "copy1.vmdk": expect.any(Number), "copy1-flat.vmdk": 8 * MiB });
    expect(sha256(await fetchBytes(results[0]!.paths.folder.join("copy1-flat.vmdk")))).toBe(await rawSha(vmdk));
    expect(await staging(DS1)).toEqual([]);
    // Once there, a copy is a hit.
    const again = await copyToDatastore(client, { datacenter: dc, fromDatastore: DS0, datastore: DS1, cachePrefix: PREFIX, imageId: "copy1", kind: "disk" });
    expect(again.alreadyCached).toBe(true);
  });

  it("two processes copying at once end with one copy there, no staging left", async () => {
    const vmdk = await images.convertedVmdk("copy2.vmdk", "monolithicSparse", { adapter: "lsilogic", sizeMiB: 8, dataMiB: 1 });
    await publishFile(vmdk, "copy2");
    const opts = { datacenter: dc, fromDatastore: DS0, datastore: DS1, cachePrefix: PREFIX, imageId: "copy2", kind: "disk" } as const;
    const [a, b] = await Promise.all([copyToDatastore(client, opts), copyToDatastore(other, opts)]);
    expect([a.alreadyCached, b.alreadyCached].sort()).toEqual([false, true]);
    expect(await cachedFiles("copy2", DS1)).toEqual({ "copy2.vmdk": expect.any(Number), "copy2-flat.vmdk": 8 * MiB });
    expect(await staging(DS1)).toEqual([]);
  });

  it("a failed copy fails every caller sharing it, leaves no staging, and the next call copies again", async () => {
    const vmdk = await images.convertedVmdk("copy3.vmdk", "monolithicSparse", { adapter: "ide", sizeMiB: 4, dataMiB: 1 });
    await publishFile(vmdk, "copy3");
    const opts = { datacenter: dc, fromDatastore: DS0, datastore: DS1, cachePrefix: PREFIX, imageId: "copy3", kind: "disk" } as const;
    await sim.control.addRule({ kind: "taskError", method: "CopyVirtualDisk_Task", fault: "CannotCreateFile", message: "no space" });
    const errors = await Promise.all([1, 2, 3].map(() => rejection(copyToDatastore(client, opts))));
    expect(errors.map((e) => (e as { code?: string }).code)).toEqual(["CannotCreateFile", "CannotCreateFile", "CannotCreateFile"]);
    expect(await staging(DS1)).toEqual([]);
    expect(await fileExists(client, dc, cacheLocation(DS1, PREFIX, "copy3", "disk").folder)).toBe(false);
    const r = await copyToDatastore(client, opts);
    expect(r.alreadyCached).toBe(false);
    expect(await cachedFiles("copy3", DS1)).toEqual({ "copy3.vmdk": expect.any(Number), "copy3-flat.vmdk": 4 * MiB });
  });

  it("an ISO is copied with CopyDatastoreFile_Task; an image not cached at the source is FileNotFound", async () => {
    const iso = await images.iso("copy.iso");
    await publishFile(iso, "copyiso");
    await sim.control.resetStats();
    const r = await copyToDatastore(client, { datacenter: dc, fromDatastore: DS0, datastore: DS1, cachePrefix: PREFIX, imageId: "copyiso", kind: "iso" });
    expect((await sim.control.stats()).methods["CopyDatastoreFile_Task"]).toBe(1);
    expect(sha256(await fetchBytes(r.paths.disk))).toBe(await fileSha(iso));
    const err = await rejection(copyToDatastore(client, { datacenter: dc, fromDatastore: DS0, datastore: DS1, cachePrefix: PREFIX, imageId: "nowhere", kind: "disk" }));
    expect(err).toBeInstanceOf(FileNotFoundFault);
    expect(await staging(DS1)).toEqual([]);
  });
});

describe("holder markers", () => {
  it("carry what each holder says of the image, read back newest first; the folder's other files are not markers", async () => {
    const vmdk = await images.convertedVmdk("held.vmdk", "monolithicSparse", { adapter: "lsilogic", sizeMiB: 4, dataMiB: 1 });
    const r = await publishFile(vmdk, "held1");
    const folder = r.paths.folder;
    await addHolder(client, dc, folder, "b", { imageId: "held1", osType: "ubuntu64Guest", adapterType: "paraVirtual", since: "2026-11-25T10:00:00.000Z" });
    await addHolder(client, dc, folder, "a", { imageId: "held1", osType: "otherGuest", adapterType: "lsiLogic", since: "2026-11-24T10:00:00.000Z" });
    await upload(client, dc, folder.join("holder-junk.json"), () => [Buffer.from("not json")], { length: 8, checksums: [] });
    const held = await readHolders(client, dc, folder);
    expect(held.map((h) => [h.holder, h.note.osType, h.note.adapterType])).toEqual([
      ["b", "ubuntu64Guest", "paraVirtual"],
      ["a", "otherGuest", "lsiLogic"],
    ]);
    expect(await holdersOf(client, dc, folder)).toEqual(expect.arrayContaining(["a", "b", "junk"]));
    expect(await removeHolder(client, dc, folder, "a")).toBe(true);
    expect((await readHolders(client, dc, folder)).map((h) => h.holder)).toEqual(["b"]);
    expect(await readHolders(client, dc, folder.parent.join("no-such-image"))).toEqual([]);
    await removeCachedImage(client, dc, DS0, PREFIX, "held1");
  });
});

describe("sized bases", () => {
  it("grows a copy of the base to the root disk's size in the cache folder, once for every caller of one client and of another", async () => {
    const vmdk = await images.convertedVmdk("sized.vmdk", "monolithicSparse", { adapter: "lsilogic", sizeMiB: 8, dataMiB: 2 });
    await publishFile(vmdk, "sized1");
    await sim.control.resetStats();
    const opts = { datacenter: dc, datastore: DS0, cachePrefix: PREFIX, imageId: "sized1", rootGb: 1, capacityBytes: 8 * MiB };
    const results = await Promise.all([...Array.from({ length: 4 }, () => ensureSizedBase(client, opts)), ensureSizedBase(other, opts)]);
    expect(new Set(results.map((r) => r.path.toString()))).toEqual(new Set([`[${DS0}] ${PREFIX}_base/sized1/sized1.1.vmdk`]));
    // Made once: one caller made it; the other client's making (if it raced) lost the move, not the copy.
    expect(results.filter((r) => r.made)).toHaveLength(1);
    expect((await sim.control.stats()).methods["ExtendVirtualDisk_Task"]).toBeLessThanOrEqual(2);
    const files = await cachedFiles("sized1");
    expect(files["sized1.1-flat.vmdk"]).toBe(2 ** 30);
    expect(files["sized1-flat.vmdk"]).toBe(8 * MiB);
    expect(await staging(DS0)).toEqual([]);
    expect((await ensureSizedBase(client, opts)).made).toBe(false);
    expect(() => ensureSizedBase(client, { ...opts, rootGb: 1, capacityBytes: 2 * 2 ** 30 })).toThrow(/smaller than image sized1/);
    await removeCachedImage(client, dc, DS0, PREFIX, "sized1");
  });
});

describe("listing, removal, sweep", () => {
  it("removeCachedImage deletes the folder; false when it is not there", async () => {
    const iso = await images.iso("rm.iso");
    await publishFile(iso, "rm1");
    expect((await cachedImages(client, dc, DS0, PREFIX)).map((i) => i.imageId)).toContain("rm1");
    expect(await removeCachedImage(client, dc, DS0, PREFIX, "rm1")).toBe(true);
    expect((await cachedImages(client, dc, DS0, PREFIX)).map((i) => i.imageId)).not.toContain("rm1");
    expect(await removeCachedImage(client, dc, DS0, PREFIX, "rm1")).toBe(false);
    expect(await cachedImages(client, dc, DS0, "nothing-here")).toEqual([]);
  });

  it("sweepStaging removes stale vmware_temp/<uuid> folders only", async () => {
    const stale = new DatastorePath(DS1, `vmware_temp/${randomUUID()}`);
    await makeDirectory(client, dc, stale.join("img"));
    await makeDirectory(client, dc, new DatastorePath(DS1, "vmware_temp/not-ours"));
    expect(await sweepStaging(client, dc, DS1, 3_600_000)).toEqual([]);
    const future = new Date(Date.now() + 2 * 3_600_000);
    const swept = await sweepStaging(client, dc, DS1, 3_600_000, future);
    expect(swept.map(String)).toEqual([stale.toString()]);
    expect(await staging(DS1)).toEqual(["not-ours"]);
  });
});
