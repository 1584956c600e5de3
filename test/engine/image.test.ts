// Image end to end: program -> serialized dynamic provider -> the real dynamic-provider
// process -> driver -> the simulator, read back from vCenter (the files in the
// datastore, their sizes and descriptors), with real qemu-img images.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { readFile, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import { DatastorePath, listFolder } from "../../provider/vsphere/datastore.js";
import { getCluster, getDatacenter, type Cluster, type Datacenter } from "../../provider/vsphere/inventory.js";
import type { MoRef } from "../../provider/vsphere/soap/xml.js";
import { runTask } from "../../provider/vsphere/task.js";
import { download } from "../../provider/vsphere/transfer.js";
import { simOptions } from "../support/clients.js";
import { addDisk, createVm } from "../support/vms.js";
import { HttpSource } from "../support/http-source.js";
import { ImageDir, ovfText, qemuImg } from "../support/images.js";
import { PROJECT_ROOT } from "../vcsim/build.mjs";
import { startVcsim, type Vcsim } from "../vcsim/index.js";
import { DynamicProviderProcess } from "./provider-process.js";
import { simulatorStack, type HarnessResult } from "./index.js";
import { eventOf, folderNames, ok, outs, resource, specStack } from "./state-helpers.js";

const PASSWORD = "pw-Image-5c1d";
const MiB = 2 ** 20;
let sim: Vcsim;
let client: VimClient;
let dc: Datacenter;
let cluster: Cluster;
let dir: string;
let images: ImageDir;
let DS: string[];
let web: HttpSource;

beforeAll(async () => {
  sim = await startVcsim({ tls: true, clusters: 1, hosts: 2, datastores: 2, nfcReadyMs: 20, password: PASSWORD });
  client = await VimClient.connect(simOptions(sim));
  dc = await getDatacenter(client);
  cluster = await getCluster(client, dc, "DC0_C0");
  DS = sim.info.inventory.datacenters[0]!.datastores.filter((d) => d.startsWith("LocalDS_")).sort();
  dir = mkdtempSync(join(tmpdir(), "image-harness-"));
  images = await ImageDir.create();
  web = await HttpSource.start(images.dir, { authorization: "Bearer t0ken" });
});
afterAll(async () => {
  await web?.close();
  await client?.close();
  await sim?.stop();
  await images?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

type Specs = Record<string, Record<string, unknown>>;
const stack = (name: string, specs: Specs, config: Record<string, string> = {}) =>
  // Each stack its own cache (vmware:cachePrefix = its name) unless told otherwise, so tests cannot see each other's images.
  specStack(sim, { dir, name, program: "test/engine/programs/images.ts", password: PASSWORD, specKey: "imgtest:images", cachePrefix: name }, specs, config);

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const fileSha = async (p: string) => sha(await readFile(p));


const ev = (r: HarnessResult, name = "img") => eventOf(r, name);


/** Names in a datastore folder ([] when it does not exist). */
const names = async (path: DatastorePath) => (await folderNames(client, dc, path)) ?? [];

async function sizes(path: DatastorePath): Promise<Record<string, number | undefined>> {
  return Object.fromEntries((await listFolder(client, dc, path, { details: true })).map((e) => [e.name, e.size]));
}

async function fetch(path: string): Promise<Buffer> {
  const d = await download(client, dc, DatastorePath.parse(path));
  const chunks: Buffer[] = [];
  for await (const c of d.stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** What a flat extent must hold: the disk's bytes as qemu-img reads them. */
async function rawSha(image: string, format = "vmdk"): Promise<string> {
  const raw = `${image}.raw`;
  await qemuImg("convert", "-f", format, "-O", "raw", image, raw);
  return fileSha(raw);
}

/** Nothing of a cache left anywhere: no image folder (of `imageId`, or any), no staging folder. */
async function expectNothingLeft(prefix: string, imageId?: string): Promise<void> {
  for (const ds of DS) {
    expect(await names(new DatastorePath(ds, "vmware_temp"))).toEqual([]);
    expect(await names(new DatastorePath(ds, imageId ? `${prefix}_base/${imageId}` : `${prefix}_base`))).toEqual([]);
  }
}

async function mbrDisk(name: string, bytes: number): Promise<string> {
  const b = Buffer.alloc(bytes);
  b.fill(7, 0, 446);
  b[510] = 0x55;
  b[511] = 0xaa;
  b.fill(9, 4096, 64 * 1024);
  await writeFile(images.path(name), b);
  return images.path(name);
}

async function ova(name: string, adapter: "lsilogic" | "ide", osType?: string): Promise<string> {
  const disk = await images.convertedVmdk(`${name}-disk.vmdk`, "streamOptimized", { adapter, sizeMiB: 8, dataMiB: 2 });
  const size = (await readFile(disk)).length;
  await writeFile(
    images.path(`${name}.ovf`),
    ovfText({ diskFile: `${name}-disk.vmdk`, diskFileSize: size, capacityBytes: 8 * MiB, controller: adapter === "ide" ? { resourceType: 5 } : { resourceType: 6, subType: "lsilogic" }, ...(osType ? { osType } : {}) }),
  );
  return images.tar(`${name}.ova`, [`${name}.ovf`, `${name}-disk.vmdk`]);
}

describe("Image through the dynamic-provider process", () => {
  it("caches every format qemu-img makes, detected from the bytes, each as vCenter needs it, and destroy removes them", async () => {
    const src = {
      sparseIde: await images.convertedVmdk("sparse-ide.vmdk", "monolithicSparse", { adapter: "ide", sizeMiB: 8, dataMiB: 2 }),
      sparseLsi: await images.convertedVmdk("sparse-lsi.vmdk", "monolithicSparse", { adapter: "lsilogic", sizeMiB: 8, dataMiB: 2 }),
      sparseBus: await images.convertedVmdk("sparse-bus.vmdk", "monolithicSparse", { adapter: "buslogic", sizeMiB: 8, dataMiB: 2 }),
      sparseLegacy: await images.convertedVmdk("sparse-legacy.vmdk", "monolithicSparse", { adapter: "legacyESX", sizeMiB: 8, dataMiB: 2 }),
      streamIde: await images.convertedVmdk("stream-ide.vmdk", "streamOptimized", { adapter: "ide", sizeMiB: 8, dataMiB: 2 }),
      streamLsi: await images.convertedVmdk("stream-lsi.vmdk", "streamOptimized", { adapter: "lsilogic", sizeMiB: 8, dataMiB: 2 }),
      streamBus: await images.convertedVmdk("stream-bus.vmdk", "streamOptimized", { adapter: "buslogic", sizeMiB: 8, dataMiB: 2 }),
      streamLegacy: await images.convertedVmdk("stream-legacy.vmdk", "streamOptimized", { adapter: "legacyESX", sizeMiB: 8, dataMiB: 2 }),
      flatLsi: await images.flatVmdk("flat-lsi.vmdk", { adapter: "lsilogic", sizeMiB: 4 }),
      flatIde: await images.flatVmdk("flat-ide.vmdk", { adapter: "ide", sizeMiB: 4 }),
      flatBus: await images.flatVmdk("flat-bus.vmdk", { adapter: "buslogic", sizeMiB: 4 }),
      flatLegacy: await images.flatVmdk("flat-legacy.vmdk", { adapter: "legacyESX", sizeMiB: 4 }),
      ova: await ova("appliance", "lsilogic", "ubuntu64Guest"),
      iso: await images.iso("tools.iso"),
      qcow2: await images.qemu("disk.qcow2", "qcow2", 8),
      raw: await mbrDisk("disk.raw", 4 * MiB),
    };
    // Data in the flat extents, so their bytes are worth comparing.
    for (const f of ["flat-lsi-flat.vmdk", "flat-ide-flat.vmdk", "flat-bus-flat.vmdk", "flat-legacy-flat.vmdk"]) {
      const b = await readFile(images.path(f));
      b.fill(5, 0, 512 * 1024);
      await writeFile(images.path(f), b);
    }
    const specs: Record<string, Record<string, unknown>> = Object.fromEntries(Object.entries(src).map(([k, p]) => [k, { source: p }]));
    specs.flatLsi = { source: src.flatLsi, diskType: "thin", adapterType: "paraVirtual" };
    const s = stack("formats", specs);
    ok(await s.up());

    const expected: Record<string, { format: string; diskType?: string; adapterType?: string; capacityBytes: number; sha256: string }> = {
      sparseIde: { format: "vmdk", diskType: "sparse", adapterType: "ide", capacityBytes: 8 * MiB, sha256: await fileSha(src.sparseIde) },
      sparseLsi: { format: "vmdk", diskType: "sparse", adapterType: "lsiLogic", capacityBytes: 8 * MiB, sha256: await fileSha(src.sparseLsi) },
      sparseBus: { format: "vmdk", diskType: "sparse", adapterType: "busLogic", capacityBytes: 8 * MiB, sha256: await fileSha(src.sparseBus) },
      sparseLegacy: { format: "vmdk", diskType: "sparse", adapterType: "lsiLogic", capacityBytes: 8 * MiB, sha256: await fileSha(src.sparseLegacy) },
      streamIde: { format: "vmdk", diskType: "streamOptimized", adapterType: "ide", capacityBytes: 8 * MiB, sha256: await fileSha(src.streamIde) },
      streamLsi: { format: "vmdk", diskType: "streamOptimized", adapterType: "lsiLogic", capacityBytes: 8 * MiB, sha256: await fileSha(src.streamLsi) },
      streamBus: { format: "vmdk", diskType: "streamOptimized", adapterType: "busLogic", capacityBytes: 8 * MiB, sha256: await fileSha(src.streamBus) },
      streamLegacy: { format: "vmdk", diskType: "streamOptimized", adapterType: "lsiLogic", capacityBytes: 8 * MiB, sha256: await fileSha(src.streamLegacy) },
      flatLsi: { format: "vmdkDescriptor", diskType: "thin", adapterType: "paraVirtual", capacityBytes: 4 * MiB, sha256: await fileSha(images.path("flat-lsi-flat.vmdk")) },
      flatIde: { format: "vmdkDescriptor", diskType: "preallocated", adapterType: "ide", capacityBytes: 4 * MiB, sha256: await fileSha(images.path("flat-ide-flat.vmdk")) },
      flatBus: { format: "vmdkDescriptor", diskType: "preallocated", adapterType: "busLogic", capacityBytes: 4 * MiB, sha256: await fileSha(images.path("flat-bus-flat.vmdk")) },
      flatLegacy: { format: "vmdkDescriptor", diskType: "preallocated", adapterType: "lsiLogic", capacityBytes: 4 * MiB, sha256: await fileSha(images.path("flat-legacy-flat.vmdk")) },
      ova: { format: "ova", diskType: "streamOptimized", adapterType: "lsiLogic", capacityBytes: 8 * MiB, sha256: await fileSha(src.ova) },
      iso: { format: "iso", capacityBytes: 18 * 2048, sha256: await fileSha(src.iso) },
      qcow2: { format: "qcow2", diskType: "sparse", adapterType: "lsiLogic", capacityBytes: 8 * MiB, sha256: await fileSha(src.qcow2) },
      raw: { format: "raw", diskType: "preallocated", adapterType: "lsiLogic", capacityBytes: 4 * MiB, sha256: await fileSha(src.raw) },
    };
    for (const [name, want] of Object.entries(expected)) {
      const o = outs(s, name);
      expect({ name, format: o.format, diskType: o.diskType, adapterType: o.adapterType, capacityBytes: o.capacityBytes, sha256: o.sha256 }).toEqual({ name, ...want });
      // The id is the content's: the first 32 hex of its sha256; a flat upload's also says its adapter and disk type.
      if (want.format === "vmdkDescriptor" || want.format === "raw") expect(o.imageId).toMatch(/^[0-9a-f]{32}$/);
      else expect(o.imageId).toBe(want.sha256.slice(0, 32));
      const file = name === "iso" ? `${o.imageId}.iso` : `${o.imageId}.vmdk`;
      const ds = Object.keys(o.cached)[0]!;
      expect(o.path).toBe(`[${ds}] formats_base/${o.imageId}/${file}`);
      const inFolder = await sizes(new DatastorePath(ds, `formats_base/${o.imageId}`));
      if (name === "iso") {
        expect(inFolder[file]).toBe(18 * 2048);
      } else {
        // A flat disk ESXi runs: descriptor + -flat of the whole capacity.
        expect(inFolder[`${o.imageId}-flat.vmdk`]).toBe(want.capacityBytes);
      }
      expect(Object.keys(inFolder).filter((n) => n.startsWith("holder-"))).toHaveLength(1);
    }
    // The same flat bytes for another adapter: another cached copy.
    expect(expected.flatLsi!.sha256).toBe(expected.flatIde!.sha256);
    expect(outs(s, "flatLsi").imageId).not.toBe(outs(s, "flatIde").imageId);
    expect(outs(s, "ova").osType).toBe("ubuntu64Guest");
    expect(outs(s, "sparseIde").osType).toBe("otherGuest");
    expect(outs(s, "flatLsi").hardwareVersion).toBeTypeOf("number");

    // The bytes are the disk's: the flat extent of a converted qcow2 and of a flat upload.
    const qcow = outs(s, "qcow2");
    expect(sha(await fetch(qcow.path.replace(".vmdk", "-flat.vmdk")))).toBe(await rawSha(src.qcow2, "qcow2"));
    const flat = outs(s, "flatLsi");
    expect(sha(await fetch(flat.path.replace(".vmdk", "-flat.vmdk")))).toBe(expected.flatLsi!.sha256);
    // A flat disk's descriptor is vCenter's (CreateVirtualDisk_Task) for the adapter asked: paraVirtual takes an lsiLogic disk.
    expect((await fetch(flat.path)).toString("latin1")).toMatch(/ddb\.adapterType\s*=\s*"lsilogic"/);
    expect((await fetch(outs(s, "flatIde").path)).toString("latin1")).toMatch(/ddb\.adapterType\s*=\s*"ide"/);
    expect((await fetch(outs(s, "flatBus").path)).toString("latin1")).toMatch(/ddb\.adapterType\s*=\s*"buslogic"/);
    for (const ds of DS) expect(await names(new DatastorePath(ds, "vmware_temp"))).toEqual([]);

    // A flat copy is made for its disk type: thin declared, then left out (the file's preallocated) is a new copy.
    // paraVirtual -> the file's lsilogic is not: both take an lsiLogic disk.
    s.set({ ...specs, flatLsi: { source: src.flatLsi } });
    const p = ok(await s.preview());
    expect(p.events.find((e) => e.key.endsWith("::flatLsi"))).toMatchObject({ op: "replace", replaces: ["diskType"] });
    expect(p.events.filter((e) => e.op !== "same").map((e) => e.key.split("::").pop())).toEqual(["flatLsi"]);

    ok(await s.destroy());
    await expectNothingLeft("formats");
  });

  it("refuses bad input at preview, naming the property, the value and what is accepted, and writes nothing", async () => {
    const ide = await images.convertedVmdk("refuse-ide.vmdk", "monolithicSparse", { adapter: "ide", sizeMiB: 4, dataMiB: 1 });
    const empty = images.path("empty.vmdk");
    await writeFile(empty, Buffer.alloc(0));
    const truncated = images.path("truncated.vmdk");
    await writeFile(truncated, (await readFile(ide)).subarray(0, 700));
    const gz = images.path("disk.vmdk.gz");
    await writeFile(gz, Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0]), Buffer.alloc(4092)]));
    const noExtent = await images.flatVmdk("lost.vmdk", { sizeMiB: 1 });
    rmSync(images.path("lost-flat.vmdk"));
    const corrupt = images.path("corrupt.vmdk");
    const damaged = await readFile(ide);
    damaged.fill(0xee, 512, 1024); // the embedded descriptor (sector 1) overwritten
    await writeFile(corrupt, damaged);
    const text = images.path("notes.vmdk");
    await writeFile(text, Buffer.alloc(4096, 0x41));
    const s = stack("refusals", {
      ideAsScsi: { source: ide, adapterType: "lsiLogic" },
      sparseAsStream: { source: ide, diskType: "streamOptimized" },
      osTypo: { source: ide, osType: "ubunt64Guest" },
      badSum: { source: ide, checksum: "sha256:1234" },
      hv: { source: ide, hypervisorType: "kvm" },
      typo: { source: ide, adapterTyp: "ide" },
      missing: { source: images.path("nope.vmdk") },
      empty: { source: empty },
      truncated: { source: truncated },
      gzip: { source: gz },
      noExtent: { source: noExtent },
      corrupt: { source: corrupt },
      noEvidence: { source: text },
      ftp: { source: "ftp://example.com/x.vmdk" },
      creds: { source: "https://user:pw@example.com/x.vmdk" },
    });
    const r = await s.preview();
    const failed = Object.fromEntries(r.events.filter((e) => e.op === "check-failed").map((e) => [e.key.split("::").pop()!, e.failures!]));
    const one = (name: string) => {
      expect(failed[name], name).toBeDefined();
      return failed[name]!.map((f) => `${f.property}: ${f.reason}`).join(" | ");
    };
    expect(one("ideAsScsi")).toMatch(/^adapterType: .*"lsiLogic".*"ide".*IDE disk cannot boot from a SCSI controller/);
    expect(one("sparseAsStream")).toMatch(/^diskType: .*"streamOptimized".*monolithicSparse/);
    expect(one("osTypo")).toMatch(/^osType: osType "ubunt64Guest" is not a vSphere guest id.*"ubuntu64Guest"/);
    expect(one("badSum")).toMatch(/^checksum: .*64 hex digits/);
    expect(one("hv")).toMatch(/^hypervisorType: .*"kvm".*vmware/);
    expect(one("typo")).toMatch(/^adapterTyp: .*did you mean "adapterType"/);
    expect(one("missing")).toMatch(/^source: .*nope\.vmdk/);
    expect(one("empty")).toMatch(/^source: .*empty/);
    expect(one("truncated")).toMatch(/^source: .*truncated/);
    expect(one("gzip")).toMatch(/^source: .*gzip.*gunzip/);
    expect(one("noExtent")).toMatch(/^source: .*lost-flat\.vmdk/);
    expect(one("corrupt")).toMatch(/^source: .*corrupt/);
    expect(one("noEvidence")).toMatch(/^source: /);
    expect(one("ftp")).toMatch(/^source: .*http\(s\) URL/);
    expect(one("creds")).toMatch(/^source: .*without user:password@.*headers/);
    expect(Object.keys(failed)).toHaveLength(15);
    await expectNothingLeft("refusals");
  });

  it("publishes nothing on a checksum mismatch, and says both values", async () => {
    const img = await images.convertedVmdk("sum.vmdk", "streamOptimized", { adapter: "lsilogic", sizeMiB: 4, dataMiB: 1 });
    const wrong = "0".repeat(64);
    const s = stack("checksum", { img: { source: img, checksum: `sha256:${wrong}` } });
    const r = await s.up();
    expect(r.errors.join("\n")).toContain(wrong);
    expect(r.errors.join("\n")).toContain(await fileSha(img));
    expect(s.state().resources).toEqual([]);
    await expectNothingLeft("checksum");

    s.set({ img: { source: img, checksum: `sha256:${await fileSha(img)}`, computeMd5: true } });
    ok(await s.up());
    expect(outs(s, "img").md5).toBe(createHash("md5").update(await readFile(img)).digest("hex"));
    ok(await s.destroy());
  });

  it("leaves nothing in the cache or in vmware_temp when the upload is cut, and the next up succeeds", async () => {
    const img = await images.convertedVmdk("cut.vmdk", "monolithicSparse", { adapter: "lsilogic", sizeMiB: 16, dataMiB: 6 });
    const id = (await fileSha(img)).slice(0, 32);
    await sim.control.addRule({ kind: "cutUpload", afterBytes: MiB, path: "/folder/vmware_temp/" });
    const s = stack("cut", { img: { source: img } });
    const r = await s.up();
    await sim.control.clearRules();
    expect(r.errors.join("\n")).not.toBe("");
    expect(s.state().resources).toEqual([]);
    await expectNothingLeft("cut");
    ok(await s.up());
    expect(outs(s, "img").imageId).toBe(id);
    ok(await s.destroy());
    await expectNothingLeft("cut");
  });

  it("two stacks publishing one image at once share one copy, and each delete leaves it to the other", async () => {
    const img = await images.convertedVmdk("shared.vmdk", "streamOptimized", { adapter: "lsilogic", sizeMiB: 8, dataMiB: 3 });
    // One cache for both; the datastore named, since two first publishes choose at the same time.
    const shared = { "vmware:cachePrefix": "shared" };
    const a = stack("shared-a", { img: { source: img, datastores: [DS[1]] } }, shared);
    const b = stack("shared-b", { img: { source: img, datastores: [DS[1]] } }, shared);
    const [ra, rb] = await Promise.all([a.up(), b.up()]);
    ok(ra);
    ok(rb);
    const oa = outs(a, "img");
    expect(outs(b, "img").path).toBe(oa.path);
    const folder = DatastorePath.parse(oa.path).parent;
    expect((await names(folder)).filter((n) => n.startsWith("holder-"))).toHaveLength(2);
    for (const ds of DS) expect(await names(new DatastorePath(ds, "vmware_temp"))).toEqual([]);
    // A third stack, later, without naming a datastore: it finds the copy and holds it too.
    const c = stack("shared-c", { img: { source: img } }, shared);
    ok(await c.up());
    expect(outs(c, "img").path).toBe(oa.path);
    ok(await c.destroy());
    ok(await a.destroy());
    expect(await names(folder)).toContain(`${oa.imageId}.vmdk`);
    ok(await b.destroy());
    expect(await names(folder)).toEqual([]);
  });

  it("refuses to delete an image a VM's disk chain uses, naming the VM; retainWhileInUse leaves it to the cache policy", async () => {
    const img = await images.convertedVmdk("used.vmdk", "monolithicSparse", { adapter: "lsilogic", sizeMiB: 4, dataMiB: 1 });
    const s = stack("used", { img: { source: img } });
    ok(await s.up());
    const base = outs(s, "img").path as string;
    const vm = await linkedCloneOf(base, "clone-of-used");
    const r = await s.destroy();
    expect(r.errors.join("\n")).toMatch(/clone-of-used.*retainWhileInUse/);
    expect(s.state().resources).toHaveLength(1);
    expect(await names(DatastorePath.parse(base).parent)).toContain(DatastorePath.parse(base).basename);

    s.set({ img: { source: img, retainWhileInUse: true } });
    const up = ok(await s.up());
    expect(up.events.find((e) => e.key.endsWith("::img"))?.op).toBe("update");
    ok(await s.destroy());
    expect(s.state().resources).toEqual([]);
    const left = await names(DatastorePath.parse(base).parent);
    expect(left).toContain(DatastorePath.parse(base).basename);
    expect(left.filter((n) => n.startsWith("holder-"))).toEqual([]);
    await runTask(client, "Destroy_Task", vm, {});
  });

  it("previews a content change as a replacement, a touched or moved file and a property as an update, and puts back a copy deleted outside", async () => {
    const img = await images.convertedVmdk("life.vmdk", "monolithicSparse", { adapter: "lsilogic", sizeMiB: 4, dataMiB: 1 });
    // A relative path is the program's folder's (the harness runs programs in the project folder).
    const s = stack("life", { img: { source: relative(PROJECT_ROOT, img) } });
    ok(await s.up());
    const first = outs(s, "img");
    expect(first.source).toBe(img);

    expect(ev(ok(await s.preview()))?.op).toBe("same");
    const later = new Date(Date.now() + 60_000);
    await utimes(img, later, later);
    expect(ev(ok(await s.preview()))?.op).toBe("same");

    // A property, and the same bytes at another path: an update in place, nothing uploaded.
    const moved = images.path("life-moved.vmdk");
    await writeFile(moved, await readFile(img));
    s.set({ img: { source: moved, osType: "ubuntu64Guest", linkedClone: false } });
    const stats = await sim.control.stats();
    expect(ev(ok(await s.up()))?.op).toBe("update");
    expect((await sim.control.stats()).uploads).toBe(stats.uploads + 1); // the holder marker only
    expect(outs(s, "img")).toMatchObject({ source: moved, osType: "ubuntu64Guest", linkedClone: false, imageId: first.imageId, path: first.path });
    // The holder marker carries what an Instance of another stack needs, and follows the update.
    const folder = DatastorePath.parse(first.path).parent;
    const marker = (await names(folder)).find((n) => n.startsWith("holder-"))!;
    expect(JSON.parse((await fetch(folder.join(marker).toString())).toString("utf8"))).toMatchObject({
      imageId: first.imageId,
      kind: "disk",
      format: "vmdk",
      diskType: "sparse",
      adapterType: "lsiLogic",
      osType: "ubuntu64Guest",
      linkedClone: false,
      capacityBytes: 4 * MiB,
      sha256: first.sha256,
    });
    s.set({ img: { source: img, osType: "ubuntu64Guest", linkedClone: false } });
    expect(ev(ok(await s.up()))?.op).toBe("update");

    // Deleted outside: refresh sees it, the next up puts it back.
    await runTask(client, "DeleteDatastoreFile_Task", client.serviceContent.fileManager!, { name: DatastorePath.parse(first.path).parent.toString(), datacenter: dc.ref });
    const refreshed = ok(await s.refresh());
    expect(ev(refreshed)?.op).toBe("drift");
    expect(outs(s, "img").missingDatastores).toEqual([Object.keys(first.cached)[0]]);
    expect(ev(ok(await s.up()))?.op).toBe("update");
    expect(await names(DatastorePath.parse(first.path).parent)).toContain(`${first.imageId}.vmdk`);

    // New content: a replacement, previewed as one.
    await images.convertedVmdk("life.vmdk", "monolithicSparse", { adapter: "lsilogic", sizeMiB: 4, dataMiB: 2 });
    const p = ok(await s.preview());
    expect(ev(p)).toMatchObject({ op: "replace", replaces: ["source"] });
    ok(await s.up());
    expect(outs(s, "img").imageId).not.toBe(first.imageId);
    expect(await names(DatastorePath.parse(first.path).parent)).toEqual([]);
    ok(await s.destroy());
  });

  it("streams from a URL with auth headers, converts a URL qcow2, and previews a new ETag as a replacement", async () => {
    const img = await images.convertedVmdk("web.vmdk", "streamOptimized", { adapter: "lsilogic", sizeMiB: 8, dataMiB: 3 });
    const qcow = await images.qemu("web.qcow2", "qcow2", 4);
    const s = stack("web", {
      noAuth: { source: web.url("/auth/web.vmdk") },
    });
    const refused = await s.preview();
    const f = refused.events.find((e) => e.op === "check-failed")?.failures ?? [];
    expect(f.map((x) => x.property)).toEqual(["headers"]);
    expect(f[0]!.reason).toMatch(/401/);

    s.set({
      img: { source: web.url("/redirect/2/files/web.vmdk"), osType: "debian10_64Guest" },
      authed: { source: web.url("/auth/web.vmdk"), headers: { Authorization: "Bearer t0ken" }, checksum: `sha256:${await fileSha(img)}` },
      qcow: { source: web.url("/files/web.qcow2") },
    });
    ok(await s.up());
    const o = outs(s, "img");
    expect(o).toMatchObject({ format: "vmdk", diskType: "streamOptimized", sha256: await fileSha(img), sizeBytes: (await readFile(img)).length });
    // A URL's id comes from its version (URL and ETag) unless a sha256 checksum gives the content's.
    expect(o.imageId).not.toBe((await fileSha(img)).slice(0, 32));
    expect(outs(s, "authed").imageId).toBe((await fileSha(img)).slice(0, 32));
    // The credentials are stored as a secret (the engine marks the output of a secret input secret).
    expect(resource(s, "authed").outputs.headers).toEqual({ "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", value: { Authorization: "Bearer t0ken" } });
    expect(outs(s, "qcow")).toMatchObject({ format: "qcow2", diskType: "sparse", sha256: await fileSha(qcow), capacityBytes: 4 * MiB });
    expect(sha(await fetch(outs(s, "qcow").path.replace(".vmdk", "-flat.vmdk")))).toBe(await rawSha(qcow, "qcow2"));
    // Nothing to fetch when nothing changed: the preview asks for the first bytes only.
    web.requests.length = 0;
    const same = ok(await s.preview());
    expect(same.events.filter((e) => e.op !== "same")).toEqual([]);
    expect(web.requests.every((r) => r.method === "HEAD" || r.headers.range !== undefined)).toBe(true);

    await images.convertedVmdk("web.vmdk", "streamOptimized", { adapter: "lsilogic", sizeMiB: 8, dataMiB: 2 });
    const p = ok(await s.preview());
    expect(p.events.find((e) => e.key.endsWith("::img"))).toMatchObject({ op: "replace", replaces: ["source"] });
    ok(await s.up());
    expect(outs(s, "img").sha256).toBe(await fileSha(img));
    ok(await s.destroy());
    await expectNothingLeft("web");
  });

  it("an OVA from a URL whose checksum is wrong is taken back out of the cache, and the error says both values", async () => {
    const appliance = await ova("bad-sum", "ide");
    const s = stack("ovasum", { app: { source: web.url("/files/bad-sum.ova"), checksum: `md5:${"ab".repeat(16)}` } });
    const r = await s.up();
    const msg = r.errors.join("\n");
    expect(msg).toContain("ab".repeat(16));
    expect(msg).toContain(createHash("md5").update(await readFile(appliance)).digest("hex"));
    expect(s.state().resources).toEqual([]);
    await expectNothingLeft("ovasum");
  });

  it("caches on every datastore named, uploading once and copying server-side, and drops a copy no longer wanted", async () => {
    const img = await images.convertedVmdk("multi.vmdk", "monolithicSparse", { adapter: "lsilogic", sizeMiB: 8, dataMiB: 3 });
    const s = stack("multi", { img: { source: img, datastores: DS } });
    const before = await sim.control.stats();
    ok(await s.up());
    const after = await sim.control.stats();
    const o = outs(s, "img");
    expect(Object.keys(o.cached).sort()).toEqual(DS);
    // One upload of the image (plus one small holder marker per datastore); copies: the sparse upload's into a flat disk, then one server-side to each other datastore.
    expect(after.uploads - before.uploads).toBe(1 + DS.length);
    expect((after.methods.CopyVirtualDisk_Task ?? 0) - (before.methods.CopyVirtualDisk_Task ?? 0)).toBe(1 + (DS.length - 1));
    for (const ds of DS) expect(await names(new DatastorePath(ds, `multi_base/${o.imageId}`))).toContain(`${o.imageId}-flat.vmdk`);

    // From the id alone (refresh of a state that lost everything but it): found on both datastores.
    const r = resource(s, "img");
    const proc = await DynamicProviderProcess.start(PROJECT_ROOT);
    try {
      await proc.configure(s.opts.config);
      const read = await proc.read(r.urn, r.id, { __provider: r.outputs.__provider }, {});
      expect(read.id).toBe(o.imageId);
      expect(read.props).toMatchObject({ imageId: o.imageId, kind: "disk", path: o.path, cached: o.cached, cachePrefix: "multi", clusterName: "DC0_C0" });
      expect((await proc.read(r.urn, "no-such-image", { __provider: r.outputs.__provider }, {})).id).toBe("");
    } finally {
      await proc.stop();
    }

    ok(await s.destroy());
    await expectNothingLeft("multi");

    // The copy to the second datastore fails: the first's upload is taken back too, nothing is left.
    await sim.control.addRule({ kind: "taskError", method: "CopyVirtualDisk_Task", args: { sourceName: `[${DS[0]}] multi_base/${o.imageId}/${o.imageId}.vmdk` }, fault: "NoDiskSpace", message: "no space" });
    const failed = await s.up();
    await sim.control.clearRules();
    expect(failed.errors.join("\n")).toMatch(/no space/);
    expect(s.state().resources).toEqual([]);
    await expectNothingLeft("multi");
    ok(await s.up());

    s.set({ img: { source: img, datastores: [DS[0]] } });
    expect(ok(await s.up()).events.find((e) => e.key.endsWith("::img"))?.op).toBe("update");
    expect(Object.keys(outs(s, "img").cached)).toEqual([DS[0]]);
    expect(await names(new DatastorePath(DS[1]!, `multi_base/${o.imageId}`))).toEqual([]);
    ok(await s.destroy());
    await expectNothingLeft("multi");
  });

  it("previews with unknown inputs: nothing is read or refused, no replacement is announced, and the up that resolves them changes nothing", async () => {
    const img = await images.convertedVmdk("unknowns.vmdk", "monolithicSparse", { adapter: "lsilogic", sizeMiB: 4, dataMiB: 1 });
    const s = simulatorStack(sim, { dir, name: "unknowns", program: "test/engine/programs/image-unknowns.ts", password: PASSWORD, config: { "vmware:cachePrefix": "unknowns", "iu:source": img } });
    ok(await s.up());
    const id = outs(s, "img").imageId;
    s.opts.config["iu:withDep"] = "true";
    const p = ok(await s.preview());
    expect(p.events.find((e) => e.key.endsWith("::dep"))?.op).toBe("create");
    expect(p.events.find((e) => e.key.endsWith("::img"))?.op).not.toBe("replace");
    const up = ok(await s.up());
    expect(up.events.find((e) => e.key.endsWith("::img"))?.op).toBe("same");
    expect(outs(s, "img").imageId).toBe(id);
    ok(await s.destroy());
    await expectNothingLeft("unknowns");
  });

  it("chooses the datastore by vmware:datastoreRegex, anchored at the start as Nova's, and refuses at preview when none fits", async () => {
    const img = await images.convertedVmdk("regex.vmdk", "monolithicSparse", { adapter: "lsilogic", sizeMiB: 4, dataMiB: 1 });
    const s = stack("regex", { img: { source: img } }, { "vmware:datastoreRegex": "LocalDS_1" });
    ok(await s.up());
    expect(Object.keys(outs(s, "img").cached)).toEqual(["LocalDS_1"]);
    // The rule places new images; one cached already stays, and its previews do not fail.
    const again = ok(await s.preview({ ...s.opts.config, "vmware:datastoreRegex": "nomatch" }));
    expect(again.events.map((e) => e.op)).toEqual(["same"]);
    ok(await s.destroy());
    // "DS_1" would match LocalDS_1 with re.search, not with re.match.
    const none = stack("regex-none", { img: { source: img } }, { "vmware:datastoreRegex": "DS_1" });
    const p = await none.preview();
    const f = p.events.find((e) => e.op === "check-failed")?.failures ?? [];
    expect(f).toHaveLength(1);
    expect(f[0]!.property).toBe("source");
    expect(f[0]!.reason).toMatch(/no datastore of cluster DC0_C0 fits.*LocalDS_1: name does not match datastoreRegex DS_1/);
    const named = stack("regex-named", { img: { source: img, datastores: ["nosuch"] } });
    const q = await named.preview();
    expect(q.events.find((e) => e.op === "check-failed")?.failures?.[0]).toMatchObject({ property: "datastores" });
  });

  it("takes a flat descriptor's extent from a second source (a URL), and previews a new extent as a replacement", async () => {
    const descriptor = await images.flatVmdk("apart.vmdk", { adapter: "lsilogic", sizeMiB: 2 });
    const flat = images.path("apart-flat.vmdk");
    const data = await readFile(flat);
    data.fill(3, 0, 256 * 1024);
    await writeFile(flat, data);
    const s = stack("apart", { img: { source: descriptor, extents: [web.url("/files/apart-flat.vmdk")] } });
    ok(await s.up());
    const o = outs(s, "img");
    expect(o).toMatchObject({ format: "vmdkDescriptor", sha256: sha(data), capacityBytes: 2 * MiB });
    expect(sha(await fetch(o.path.replace(".vmdk", "-flat.vmdk")))).toBe(sha(data));
    expect(ev(ok(await s.preview()))?.op).toBe("same");
    data.fill(4, 0, 1024);
    await writeFile(flat, data);
    expect(ev(ok(await s.preview()))).toMatchObject({ op: "replace", replaces: ["source"] });
    ok(await s.destroy());
    await expectNothingLeft("apart");
  });

  it("with an imageId input, reads the file once (hashed on the way) and previews dropping the id as a replacement", async () => {
    const img = await images.convertedVmdk("named.vmdk", "monolithicSparse", { adapter: "lsilogic", sizeMiB: 4, dataMiB: 1 });
    const s = stack("named", { img: { source: img, imageId: "ubuntu-22.04" } });
    ok(await s.up());
    const o = outs(s, "img");
    expect(o).toMatchObject({ imageId: "ubuntu-22.04", sha256: await fileSha(img), contentImageId: (await fileSha(img)).slice(0, 32) });
    expect(o.path).toBe(`[${Object.keys(o.cached)[0]}] named_base/ubuntu-22.04/ubuntu-22.04.vmdk`);
    s.set({ img: { source: img } });
    expect(ev(ok(await s.preview()))).toMatchObject({ op: "replace", replaces: ["imageId"] });
    ok(await s.destroy());
    await expectNothingLeft("named");
  });
});

/** A VM whose disk is a delta on top of `base`, as Nova's linked clone. */
async function linkedCloneOf(base: string, name: string): Promise<MoRef> {
  const ds = DatastorePath.parse(base).datastore;
  const vm = await createVm(client, dc, cluster, name, ds);
  await addDisk(client, vm, `[${ds}] ${name}/${name}.vmdk`, { fileName: base, diskMode: "persistent" });
  return vm;
}
