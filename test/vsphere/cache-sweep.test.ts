// The cache sweeper against a private simulator: images in use survive (a linked clone's
// delta, a sized base, a VM made outside the provider that uses the cached disk itself,
// a template, an ISO on a CD-ROM), an unused one is marked and, once its marker is
// older than the minimum age, deleted whole; a used-again image loses its marker; dry
// run and removeUnused=false change nothing; held images are kept; two sweeps at once;
// a sweep racing a publish and an Instance create; staging and shadow-VM folders; the
// round trips per datastore.
//
// Ages: the simulator's datastores are local folders (the datastore's url), so an old
// staging or shadow folder is made old by setting its files' times there; an old age
// marker is one whose name says an old time.
import { randomUUID } from "node:crypto";
import { readdir, stat, utimes } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ageMarkerName, ageMarkerTime, clearAgeMarkers, listCache, sweepCache, type DatastoreSweep, type ImageSweep, type SweepOptions } from "../../provider/vsphere/cache-sweep.js";
import { VimClient } from "../../provider/vsphere/client.js";
import { DatastorePath, fileExists, listFolder, makeDirectory } from "../../provider/vsphere/datastore.js";
import { cacheLocation, publishStaged, stagingFor } from "../../provider/vsphere/image-cache.js";
import { addHolder } from "../../provider/vsphere/image-holders.js";
import { getCluster, getDatacenter, getDatastores, type Cluster, type Datacenter } from "../../provider/vsphere/inventory.js";
import { MoRef as MoRefOf, type MoRef } from "../../provider/vsphere/soap/xml.js";
import { runTask } from "../../provider/vsphere/task.js";
import { upload } from "../../provider/vsphere/transfer.js";
import { simOptions } from "../support/clients.js";
import { addDisk, createDisk, createVm } from "../support/vms.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";

let sim: Vcsim;
let client: VimClient;
let other: VimClient;
let dc: Datacenter;
let cluster: Cluster;
let DS0: string;
let DS1: string;
/** Datastore name -> the simulator's local folder behind it. */
const localDir = new Map<string, string>();

const HOUR = 3600;
const DAY = 86400;

beforeAll(async () => {
  sim = await startVcsim({ clusters: 1, hosts: 1, datastores: 2 });
  [client, other] = await Promise.all([VimClient.connect(simOptions(sim)), VimClient.connect(simOptions(sim))]);
  dc = await getDatacenter(client);
  cluster = await getCluster(client, dc, sim.info.inventory.datacenters[0]!.clusters[0]!.name);
  [DS0, DS1] = sim.info.inventory.datacenters[0]!.datastores.filter((d) => d.startsWith("LocalDS_")) as [string, string];
  for (const ds of await getDatastores(client, cluster.datastores)) localDir.set(ds.name, ds.url);
});
afterAll(async () => {
  await client?.close();
  await other?.close();
  await sim?.stop();
});

/** A cached disk image: `<prefix>_base/<id>/<id>.vmdk` (+ flat), made by vCenter. */
async function cacheDisk(ds: string, prefix: string, id: string, kb = 64): Promise<DatastorePath> {
  const loc = cacheLocation(ds, prefix, id, "disk");
  await makeDirectory(client, dc, loc.folder, { createParents: true });
  await createDisk(client, dc, loc.disk.toString(), kb, "thin");
  return loc.disk;
}

/** A cached ISO: `<prefix>_base/<id>/<id>.iso`. */
async function cacheIso(ds: string, prefix: string, id: string): Promise<DatastorePath> {
  const loc = cacheLocation(ds, prefix, id, "iso");
  const body = Buffer.alloc(4096, 7);
  await upload(client, dc, loc.disk, () => [body], { length: body.length, checksums: [] });
  return loc.disk;
}

/** A VM (made outside the provider) whose disk is a linked clone's delta on `parent`. */
async function linkedClone(name: string, ds: string, parent: DatastorePath): Promise<MoRef> {
  const vm = await createVm(client, dc, cluster, name, ds);
  await makeDirectory(client, dc, new DatastorePath(ds, name), { createParents: true });
  await addDisk(client, vm, `[${ds}] ${name}/${name}.vmdk`, { fileName: parent.toString(), diskMode: "persistent" });
  return vm;
}

/** A VM given an existing file as its disk (no file operation): the cached disk itself. */
async function attachExisting(vm: MoRef, file: DatastorePath): Promise<void> {
  await runTask(client, "ReconfigVM_Task", vm, {
    spec: {
      deviceChange: [
        {
          operation: "add",
          device: {
            $type: "VirtualDisk",
            key: -1,
            backing: { $type: "VirtualDiskFlatVer2BackingInfo", fileName: file.toString(), diskMode: "persistent" },
            controllerKey: 200,
            unitNumber: 0,
            capacityInKB: 64,
          },
        },
      ],
    },
  });
}

/** A VM whose CD-ROM is the cached ISO (an ISO image's Instance boots from it). */
async function attachIso(vm: MoRef, iso: DatastorePath): Promise<void> {
  await runTask(client, "ReconfigVM_Task", vm, {
    spec: {
      deviceChange: [
        {
          operation: "add",
          device: { $type: "VirtualCdrom", key: -2, backing: { $type: "VirtualCdromIsoBackingInfo", fileName: iso.toString() }, controllerKey: 201, unitNumber: 0 },
        },
      ],
    },
  });
}

/** The same old marker an earlier sweep would have made `ageSeconds` ago. */
async function oldMarker(ds: string, prefix: string, id: string, ageSeconds: number): Promise<string> {
  const name = ageMarkerName(new Date(Date.now() - ageSeconds * 1000));
  await makeDirectory(client, dc, cacheLocation(ds, prefix, id, "disk").folder.join(name), { createParents: false });
  return name;
}

/** Sets every file's and folder's times below a datastore folder (and itself) to `secondsAgo`. */
async function age(path: DatastorePath, secondsAgo: number): Promise<void> {
  const root = join(localDir.get(path.datastore)!, path.path);
  const t = new Date(Date.now() - secondsAgo * 1000);
  const walk = async (p: string): Promise<void> => {
    if ((await stat(p)).isDirectory()) for (const e of await readdir(p)) await walk(join(p, e));
    await utimes(p, t, t);
  };
  await walk(root);
}

const folderOf = (ds: string, prefix: string, id: string) => cacheLocation(ds, prefix, id, "disk").folder;
const names = async (folder: DatastorePath) => (await listFolder(client, dc, folder)).map((e) => e.name).sort();
const image = (r: DatastoreSweep | undefined, id: string): ImageSweep => {
  const found = r?.images.find((i) => i.imageId === id);
  if (!found) throw new Error(`image ${id} not in the report of ${r?.datastore}: ${JSON.stringify(r?.images.map((i) => i.imageId))}`);
  return found;
};
const opts = (over: Partial<SweepOptions> & Pick<SweepOptions, "cachePrefix">): SweepOptions => ({
  datacenter: dc,
  datastores: [DS0],
  removeUnused: true,
  minAgeSeconds: DAY,
  ...over,
});

describe("age markers", () => {
  it("are named ts-YYYY-MM-DD-HH-MM-SS in UTC and read back; other names are not markers", () => {
    const at = new Date("2026-03-04T05:06:07.890Z");
    expect(ageMarkerName(at)).toBe("ts-2026-03-04-05-06-07");
    expect(ageMarkerTime("ts-2026-03-04-05-06-07")?.toISOString()).toBe("2026-03-04T05:06:07.000Z");
    expect(ageMarkerTime("ts-2026-02-30-00-00-00")).toBeUndefined();
    expect(ageMarkerTime("ts-later")).toBeUndefined();
    expect(ageMarkerTime("holder-x.json")).toBeUndefined();
  });
});

describe("sweepCache: what is in use survives", () => {
  const P = "use";
  const vms: Record<string, MoRef> = {};

  beforeAll(async () => {
    const linked = await cacheDisk(DS0, P, "linked");
    vms.lc = await linkedClone("use-lc", DS0, linked);

    // A linked clone of a sized base (<id>.<gb>.vmdk): the image's own disk is used by nobody.
    await cacheDisk(DS0, P, "sized");
    const sizedBase = folderOf(DS0, P, "sized").join("sized.1.vmdk");
    await createDisk(client, dc, sizedBase.toString(), 128, "thin");
    vms.sized = await linkedClone("use-sized", DS0, sizedBase);

    // A VM someone made by hand whose disk is the cached file itself.
    const direct = await cacheDisk(DS0, P, "direct");
    vms.direct = await createVm(client, dc, cluster, "hand-made", DS0);
    await attachExisting(vms.direct, direct);

    // A template linked to an image.
    const tmpl = await cacheDisk(DS0, P, "tmpl");
    vms.tmpl = await linkedClone("use-tmpl", DS0, tmpl);
    await client.invoke("MarkAsTemplate", vms.tmpl);

    // An ISO image's VM: its CD-ROM is the cached ISO.
    const iso = await cacheIso(DS0, P, "iso");
    vms.iso = await createVm(client, dc, cluster, "use-iso", DS0);
    await attachIso(vms.iso, iso);

    // A full copy: its disk was copied from the cache into its own folder and names no cache file.
    await cacheDisk(DS0, P, "fullsrc");
    vms.full = await createVm(client, dc, cluster, "use-full", DS0);
    await makeDirectory(client, dc, new DatastorePath(DS0, "use-full"), { createParents: true });
    await runTask(client, "CopyVirtualDisk_Task", client.serviceContent.virtualDiskManager!, {
      sourceName: folderOf(DS0, P, "fullsrc").join("fullsrc.vmdk").toString(),
      sourceDatacenter: dc.ref,
      destName: `[${DS0}] use-full/use-full.vmdk`,
      destDatacenter: dc.ref,
    });
    await attachExisting(vms.full, new DatastorePath(DS0, "use-full/use-full.vmdk"));

    // Unused, each with a marker older than any minimum age: only the unused one may go.
    for (const id of ["linked", "sized", "direct", "tmpl", "iso", "fullsrc"]) await oldMarker(DS0, P, id, 30 * DAY);
  });

  it("keeps every image a VM's disk chain or CD-ROM uses (removing its marker), and deletes the unused one whole", async () => {
    const report = await sweepCache(client, opts({ cachePrefix: P }));
    const ds = report.datastores[0];
    expect(ds?.errors).toEqual([]);
    expect(image(ds, "linked")).toMatchObject({ state: "in-use", users: ["use-lc"] });
    expect(image(ds, "sized")).toMatchObject({ state: "in-use", users: ["use-sized"] });
    expect(image(ds, "direct")).toMatchObject({ state: "in-use", users: ["hand-made"] });
    expect(image(ds, "tmpl")).toMatchObject({ state: "in-use", users: ["use-tmpl"] });
    expect(image(ds, "iso")).toMatchObject({ state: "in-use", users: ["use-iso"] });
    for (const id of ["linked", "sized", "direct", "tmpl", "iso"]) {
      expect(image(ds, id).markedAt).toBeUndefined();
      expect((await names(folderOf(DS0, P, id))).filter((n) => n.startsWith("ts-"))).toEqual([]);
    }
    expect(await fileExists(client, dc, folderOf(DS0, P, "sized").join("sized.1.vmdk"))).toBe(true);

    // The full copy's origin: no VM references it, so it is unused and goes; the copy does not care.
    const full = image(ds, "fullsrc");
    expect(full).toMatchObject({ state: "removed", users: [] });
    expect(full.files).toEqual(expect.arrayContaining(["fullsrc.vmdk", "fullsrc-flat.vmdk"]));
    expect(ds?.bytesFreed).toBe(full.bytes);
    expect(full.bytes).toBeGreaterThan(0);
    expect(await fileExists(client, dc, folderOf(DS0, P, "fullsrc"))).toBe(false);
    expect(await fileExists(client, dc, new DatastorePath(DS0, "use-full/use-full.vmdk"))).toBe(true);
  });
});

describe("sweepCache: aging", () => {
  it("marks a young unused image, keeps it while the marker is younger than the minimum age, then deletes it whole (sized bases too)", async () => {
    const P = "age";
    await cacheDisk(DS0, P, "img");
    await createDisk(client, dc, folderOf(DS0, P, "img").join("img.2.vmdk").toString(), 128, "thin");
    const t0 = new Date();

    const first = await sweepCache(client, opts({ cachePrefix: P, now: t0 }));
    const marker = ageMarkerName(t0);
    expect(image(first.datastores[0], "img")).toMatchObject({ state: "marked", markedAt: ageMarkerTime(marker)!.toISOString() });
    expect(await names(folderOf(DS0, P, "img"))).toContain(marker);

    // A day less ten seconds later: still aging, nothing made or removed.
    const young = await sweepCache(client, opts({ cachePrefix: P, now: new Date(t0.getTime() + (DAY - 10) * 1000) }));
    expect(image(young.datastores[0], "img")).toMatchObject({ state: "aging", markedAt: ageMarkerTime(marker)!.toISOString() });
    expect((await names(folderOf(DS0, P, "img"))).filter((n) => n.startsWith("ts-"))).toEqual([marker]);

    // A day and a second later: the folder goes, with the sized base and the marker.
    const old = await sweepCache(client, opts({ cachePrefix: P, now: new Date(t0.getTime() + (DAY + 1) * 1000) }));
    const rec = image(old.datastores[0], "img");
    expect(rec.state).toBe("removed");
    expect(rec.files).toEqual(expect.arrayContaining(["img.vmdk", "img.2.vmdk"]));
    expect(old.datastores[0]!.bytesFreed).toBe(rec.bytes);
    expect(await fileExists(client, dc, folderOf(DS0, P, "img"))).toBe(false);
    expect(await fileExists(client, dc, new DatastorePath(DS0, `${P}_base`))).toBe(true);
  });

  it("a used-again image loses its marker: by the sweep (a VM uses it now) and by clearAgeMarkers (an Instance about to use it)", async () => {
    const P = "again";
    const disk = await cacheDisk(DS0, P, "img");
    const m = await oldMarker(DS0, P, "img", HOUR);
    await linkedClone("again-vm", DS0, disk);
    const r = await sweepCache(client, opts({ cachePrefix: P }));
    expect(image(r.datastores[0], "img")).toMatchObject({ state: "in-use", users: ["again-vm"] });
    expect(image(r.datastores[0], "img").markedAt).toBeUndefined();
    expect(await names(folderOf(DS0, P, "img"))).not.toContain(m);

    await cacheDisk(DS0, P, "img2");
    await oldMarker(DS0, P, "img2", HOUR);
    await oldMarker(DS0, P, "img2", 2 * HOUR);
    expect(await clearAgeMarkers(client, dc, folderOf(DS0, P, "img2"))).toBe(2);
    expect((await names(folderOf(DS0, P, "img2"))).filter((n) => n.startsWith("ts-"))).toEqual([]);
    expect(await clearAgeMarkers(client, dc, folderOf(DS0, P, "gone"))).toBe(0);
  });

  it("the markers of a datastore change in batches: every removal's outcome in one read, new ones a call each", async () => {
    const P = "batch";
    const used = 3;
    for (let i = 0; i < used; i++) {
      const disk = await cacheDisk(DS0, P, `u${i}`);
      await oldMarker(DS0, P, `u${i}`, HOUR);
      await oldMarker(DS0, P, `u${i}`, 2 * HOUR);
      await linkedClone(`batch-vm${i}`, DS0, disk);
    }
    for (let i = 0; i < 2; i++) await cacheDisk(DS0, P, `new${i}`);
    const m0 = { ...(await sim.control.stats()).methods };
    const r = await sweepCache(client, opts({ cachePrefix: P }));
    const m1 = (await sim.control.stats()).methods;
    const by = (m: string) => (m1[m] ?? 0) - (m0[m] ?? 0);
    expect(r.datastores[0]!.errors).toEqual([]);
    expect(r.datastores[0]!.images.map((i) => `${i.imageId}:${i.state}`)).toEqual(["new0:marked", "new1:marked", "u0:in-use", "u1:in-use", "u2:in-use"]);
    for (let i = 0; i < used; i++) expect((await names(folderOf(DS0, P, `u${i}`))).filter((n) => n.startsWith("ts-"))).toEqual([]);
    for (let i = 0; i < 2; i++) expect((await names(folderOf(DS0, P, `new${i}`))).filter((n) => n.startsWith("ts-"))).toHaveLength(1);
    expect(by("DeleteDatastoreFile_Task")).toBe(2 * used);
    expect(by("MakeDirectory")).toBe(2);
    // The listings' outcomes, the VM pass, and ONE read of the six marker deletions' outcomes
    // (plus one for old shadow-looking folders other tests left at the root, if any).
    const shadowLists = by("SearchDatastore_Task") - 1;
    expect(by("RetrievePropertiesEx")).toBe(3 + (shadowLists > 0 ? 1 : 0));
  });

  it("the newest of two markers counts (two sweeps each made one)", async () => {
    const P = "two";
    await cacheDisk(DS0, P, "img");
    await oldMarker(DS0, P, "img", 30 * DAY);
    const newest = await oldMarker(DS0, P, "img", HOUR);
    const r = await sweepCache(client, opts({ cachePrefix: P }));
    expect(image(r.datastores[0], "img")).toMatchObject({ state: "aging", markedAt: ageMarkerTime(newest)!.toISOString() });
    expect(await fileExists(client, dc, folderOf(DS0, P, "img"))).toBe(true);
  });
});

describe("sweepCache: what is never deleted", () => {
  it("dry run changes nothing and says what a sweep would do", async () => {
    const P = "dry";
    await cacheDisk(DS0, P, "old");
    await oldMarker(DS0, P, "old", 30 * DAY);
    await cacheDisk(DS0, P, "new");
    const stale = stagingFor(DS0, "x").root;
    await makeDirectory(client, dc, stale.join("x"), { createParents: true });
    await age(stale, 2 * HOUR);
    const before = { old: await names(folderOf(DS0, P, "old")), new: await names(folderOf(DS0, P, "new")) };

    const r = await sweepCache(client, opts({ cachePrefix: P, dryRun: true }));
    expect(r.dryRun).toBe(true);
    const ds = r.datastores[0]!;
    expect(image(ds, "old").state).toBe("would-remove");
    expect(image(ds, "new")).toMatchObject({ state: "marked", reason: "dry run: the marker was not made" });
    expect(ds.bytesFreed).toBe(0);
    expect(ds.stagingCleaned).toContain(stale.toString());
    expect({ old: await names(folderOf(DS0, P, "old")), new: await names(folderOf(DS0, P, "new")) }).toEqual(before);
    expect(await fileExists(client, dc, stale)).toBe(true);
  });

  it("removeUnused false marks nothing, deletes nothing (staging included) and still reports", async () => {
    const P = "keep";
    await cacheDisk(DS0, P, "old");
    const m = await oldMarker(DS0, P, "old", 30 * DAY);
    await cacheDisk(DS0, P, "new");
    const stale = stagingFor(DS0, "y").root;
    await makeDirectory(client, dc, stale.join("y"), { createParents: true });
    await age(stale, 2 * HOUR);

    const r = await sweepCache(client, opts({ cachePrefix: P, removeUnused: false }));
    const ds = r.datastores[0]!;
    expect(image(ds, "old")).toMatchObject({ state: "kept", markedAt: ageMarkerTime(m)!.toISOString(), reason: "unused; removeUnusedBaseImages is false" });
    expect(image(ds, "new")).toMatchObject({ state: "kept" });
    expect(image(ds, "new").markedAt).toBeUndefined();
    expect(ds.stagingCleaned).toEqual([]);
    expect(await names(folderOf(DS0, P, "new"))).toEqual(["new-flat.vmdk", "new.vmdk"]);
    expect(await fileExists(client, dc, folderOf(DS0, P, "old"))).toBe(true);
    expect(await fileExists(client, dc, stale)).toBe(true);
  });

  it("an image an Image resource holds is kept and not aged (its marker removed); one without its disk is left alone", async () => {
    const P = "held";
    await cacheDisk(DS0, P, "img");
    await oldMarker(DS0, P, "img", 30 * DAY);
    await addHolder(client, dc, folderOf(DS0, P, "img"), "stack-a");
    // A folder without <id>.vmdk / .iso: publishStaged may be moving the disk into it.
    await makeDirectory(client, dc, folderOf(DS0, P, "half"), { createParents: true });
    await oldMarker(DS0, P, "half", 30 * DAY);
    // Not an image folder at all, and a file beside the images: outside the cache's rules.
    await makeDirectory(client, dc, new DatastorePath(DS0, `${P}_base/.hidden`), { createParents: true });

    const r = await sweepCache(client, opts({ cachePrefix: P }));
    const ds = r.datastores[0]!;
    expect(image(ds, "img")).toMatchObject({ state: "kept", holders: ["stack-a"] });
    expect(image(ds, "img").reason).toMatch(/held by an Image resource \(stack-a\)/);
    expect((await names(folderOf(DS0, P, "img"))).filter((n) => n.startsWith("ts-"))).toEqual([]);
    expect(image(ds, "half")).toMatchObject({ state: "kept" });
    expect(image(ds, "half").reason).toMatch(/being published/);
    expect(ds.images.map((i) => i.imageId).sort()).toEqual(["half", "img"]);
    expect(await fileExists(client, dc, folderOf(DS0, P, "half"))).toBe(true);
    expect(await fileExists(client, dc, new DatastorePath(DS0, `${P}_base/.hidden`))).toBe(true);
  });

  it("only the cache prefix's folder is swept: another prefix's old images stay", async () => {
    await cacheDisk(DS0, "mine", "img");
    await oldMarker(DS0, "mine", "img", 30 * DAY);
    await cacheDisk(DS0, "theirs", "img");
    await oldMarker(DS0, "theirs", "img", 30 * DAY);
    const r = await sweepCache(client, opts({ cachePrefix: "mine" }));
    expect(image(r.datastores[0], "img").state).toBe("removed");
    expect(await fileExists(client, dc, folderOf(DS0, "theirs", "img"))).toBe(true);
  });
});

/** Resolves once the rule has fired (the simulator is serving the call it holds). */
async function fired(id: number): Promise<void> {
  while ((await sim.control.rule(id)).fired === 0) await new Promise((r) => setImmediate(r));
}

describe("sweepCache: concurrency", () => {
  it("two sweeps at once: each old image removed once (the other finds it gone), markers made once or twice, no error", async () => {
    const P = "conc";
    const ids = ["a", "b", "c"];
    for (const id of ids) {
      await cacheDisk(DS0, P, id);
      await oldMarker(DS0, P, id, 30 * DAY);
    }
    await cacheDisk(DS0, P, "young");
    // Deletes take a while, so both sweeps have read before either deletes.
    const slow = await sim.control.addRule({ kind: "taskDelay", method: "DeleteDatastoreFile_Task", ms: 300, times: -1 });
    try {
      const [r1, r2] = await Promise.all([sweepCache(client, opts({ cachePrefix: P })), sweepCache(other, opts({ cachePrefix: P }))]);
      for (const r of [r1, r2]) {
        expect(r.datastores[0]!.errors).toEqual([]);
        for (const id of ids) expect(image(r.datastores[0], id).state).toBe("removed");
        expect(image(r.datastores[0], "young").state).toBe("marked");
      }
      const bytes = ids.map((id) => image(r1.datastores[0], id).bytes).reduce((a, b) => a + b, 0);
      expect(r1.datastores[0]!.bytesFreed + r2.datastores[0]!.bytesFreed).toBe(bytes);
      const gone = [...r1.datastores[0]!.images, ...r2.datastores[0]!.images].filter((i) => i.reason?.startsWith("already gone"));
      expect(gone).toHaveLength(ids.length);
      for (const id of ids) expect(await fileExists(client, dc, folderOf(DS0, P, id))).toBe(false);
      const markers = (await names(folderOf(DS0, P, "young"))).filter((n) => n.startsWith("ts-"));
      expect(markers.length).toBeGreaterThanOrEqual(1);
      expect(markers.length).toBeLessThanOrEqual(2);
      expect((await sim.control.rule(slow.id)).fired).toBeGreaterThanOrEqual(ids.length);
    } finally {
      await sim.control.clearRules();
    }
  });

  it("a sweep racing a publish: the staging folder in use is not cleaned, the image is published whole and not touched", async () => {
    const P = "race";
    const loc = cacheLocation(DS0, P, "pub", "disk");
    const staging = stagingFor(DS0, "pub");
    await makeDirectory(client, dc, staging.folder, { createParents: true });
    await createDisk(client, dc, staging.folder.join("pub.vmdk").toString(), 64, "thin");
    const move = await sim.control.addRule({ kind: "taskDelay", method: "MoveDatastoreFile_Task", ms: 300 });
    try {
      const publishing = publishStaged(other, dc, staging.folder, loc, "disk");
      await fired(move.id);
      // minAge 0: the most eager sweep there is.
      const r = await sweepCache(client, opts({ cachePrefix: P, minAgeSeconds: 0 }));
      expect(r.datastores[0]!.errors).toEqual([]);
      expect(r.datastores[0]!.stagingCleaned).not.toContain(staging.root.toString());
      expect(await publishing).toEqual({ alreadyCached: false });
    } finally {
      await sim.control.clearRules();
    }
    expect(await names(loc.folder)).toEqual(["pub-flat.vmdk", "pub.vmdk"]);
  });

  it("an image held (Image publish) or used again (Instance create) between the sweep's read and its delete is kept", async () => {
    const P = "window";
    for (const id of ["held", "idle", "used"]) {
      await cacheDisk(DS0, P, id);
      await oldMarker(DS0, P, id, 30 * DAY);
    }
    // Hold the re-check of "held" and of "used" (the search of the folder just before its delete):
    // the VM pass is done, the sweep has judged both old and unused.
    const recheck = (id: string) =>
      sim.control.addRule({ kind: "taskDelay", method: "SearchDatastore_Task", args: { datastorePath: folderOf(DS0, P, id).toString() }, ms: 1500 });
    const [heldRule, usedRule] = [await recheck("held"), await recheck("used")];
    try {
      const sweeping = sweepCache(client, opts({ cachePrefix: P }));
      await fired(heldRule.id);
      // An Image resource's publish of the same image found it cached and holds it.
      await addHolder(other, dc, folderOf(DS0, P, "held"), "late-stack");
      await fired(usedRule.id);
      // An Instance create: the markers cleared first, then the linked clone made.
      expect(await clearAgeMarkers(other, dc, folderOf(DS0, P, "used"))).toBe(1);
      await linkedClone("window-vm", DS0, folderOf(DS0, P, "used").join("used.vmdk"));
      const r = await sweeping;
      const ds = r.datastores[0]!;
      expect(image(ds, "held")).toMatchObject({ state: "kept", holders: ["late-stack"] });
      expect(image(ds, "used")).toMatchObject({ state: "kept", reason: "its age marker was removed since the sweep read it: used again" });
      expect(image(ds, "idle").state).toBe("removed");
    } finally {
      await sim.control.clearRules();
    }
    expect(await fileExists(client, dc, folderOf(DS0, P, "held").join("held.vmdk"))).toBe(true);
    expect(await fileExists(client, dc, folderOf(DS0, P, "used").join("used.vmdk"))).toBe(true);
    expect(await fileExists(client, dc, folderOf(DS0, P, "idle"))).toBe(false);
    // The next sweep sees the VM.
    const next = await sweepCache(client, opts({ cachePrefix: P }));
    expect(image(next.datastores[0], "used")).toMatchObject({ state: "in-use", users: ["window-vm"] });
  });

});

describe("sweepCache: what failed work left", () => {
  it("cleans staging folders older than the grace period, not fresh ones nor names that are not ours", async () => {
    const stale = stagingFor(DS1, "s").root;
    const fresh = stagingFor(DS1, "f").root;
    const foreign = new DatastorePath(DS1, "vmware_temp/not-a-uuid");
    for (const f of [stale, fresh, foreign]) await makeDirectory(client, dc, f.join("x"), { createParents: true });
    await age(stale, 2 * HOUR);
    await age(foreign, 2 * HOUR);
    const r = await sweepCache(client, opts({ cachePrefix: "none", datastores: [DS1] }));
    expect(r.datastores[0]!.stagingCleaned).toEqual([stale.toString()]);
    expect(await fileExists(client, dc, stale)).toBe(false);
    expect(await fileExists(client, dc, fresh)).toBe(true);
    expect(await fileExists(client, dc, foreign)).toBe(true);
    // A shorter grace period takes the fresh one too (its files are seconds old).
    const r2 = await sweepCache(client, opts({ cachePrefix: "none", datastores: [DS1], stagingGraceSeconds: 0, now: new Date(Date.now() + 2000) }));
    expect(r2.datastores[0]!.stagingCleaned).toEqual([fresh.toString()]);
  });

  it("cleans a shadow VM's folder left behind (old, no VM), not a registered one's, a fresh one, one still written to, one with files of other names, or other folder names", async () => {
    const dsRoot = new DatastorePath(DS1);
    const mk = async (name: string) => {
      const folder = dsRoot.join(name);
      await makeDirectory(client, dc, folder, { createParents: true });
      const body = Buffer.from("config.version = \"8\"\n");
      await upload(client, dc, folder.join(`${name}.vmx`), () => [body], { length: body.length, checksums: [] });
      return folder;
    };
    const leaked = await mk("image-leakedimg-0123abcd");
    const fresh = await mk("image-freshimg-89abcdef");
    const writing = await mk("image-writing-00ff00ff");
    const notOurs = await mk("image-notours");
    const foreignFile = await mk("image-userfolder-0badcafe");
    const note = Buffer.from("keep me\n");
    await upload(client, dc, foreignFile.join("notes.txt"), () => [note], { length: note.length, checksums: [] });
    // A registered shadow VM (an import in progress) of an old folder.
    await createVm(client, dc, cluster, "image-regimg-deadbeef", DS1);
    const registered = dsRoot.join("image-regimg-deadbeef");
    expect(await fileExists(client, dc, registered)).toBe(true);
    for (const f of [leaked, notOurs, registered, foreignFile]) await age(f, 2 * HOUR);
    // The folder is old but a file in it was written just now.
    await utimes(join(localDir.get(DS1)!, writing.path), new Date(Date.now() - 2 * HOUR * 1000), new Date(Date.now() - 2 * HOUR * 1000));

    const dry = await sweepCache(client, opts({ cachePrefix: "none", datastores: [DS1], dryRun: true }));
    expect(dry.datastores[0]!.shadowCleaned).toEqual([leaked.toString()]);
    expect(await fileExists(client, dc, leaked)).toBe(true);

    const r = await sweepCache(client, opts({ cachePrefix: "none", datastores: [DS1] }));
    expect(r.datastores[0]!.shadowCleaned).toEqual([leaked.toString()]);
    expect(await fileExists(client, dc, leaked)).toBe(false);
    for (const f of [fresh, writing, notOurs, registered, foreignFile]) expect(await fileExists(client, dc, f)).toBe(true);
  });
});

describe("sweepCache and listCache: cost and report", () => {
  it("a steady-state sweep of two datastores costs at most 10 round trips per datastore: a search per folder, not a call per image", async () => {
    const P = "cost";
    for (const ds of [DS0, DS1]) {
      for (let i = 0; i < 6; i++) {
        const disk = await cacheDisk(ds, P, `img${i}`);
        if (i % 2 === 0) await linkedClone(`cost-${ds}-${i}`, ds, disk);
        else await oldMarker(ds, P, `img${i}`, HOUR);
      }
    }
    const warm = await sweepCache(client, opts({ cachePrefix: P, datastores: [DS0, DS1] }));
    expect(warm.datastores.flatMap((d) => d.errors)).toEqual([]);
    const before = (await sim.control.stats()).soapRequests;
    const m0 = { ...(await sim.control.stats()).methods };
    const r = await sweepCache(client, opts({ cachePrefix: P, datastores: [DS0, DS1] }));
    const calls = (await sim.control.stats()).soapRequests - before;
    expect(r.roundTrips).toBe(calls);
    const m1 = (await sim.control.stats()).methods;
    const by = (m: string) => (m1[m] ?? 0) - (m0[m] ?? 0);
    // Per datastore one search of the cache and one of vmware_temp, one listing of the root,
    // all six tasks started at once and read in ONE round trip; one VM pass for both. The
    // images' number does not show.
    expect(by("SearchDatastoreSubFolders_Task")).toBe(4);
    // Old shadow-VM-looking folders other tests left at DS1's root are listed too, in one
    // more batch: a search each and one round trip for all.
    const shadowLists = by("SearchDatastore_Task") - 2;
    expect(by("RetrievePropertiesEx")).toBe(2 + (shadowLists > 0 ? 1 : 0)); // the six tasks' outcomes, the VM pass's first page
    expect(calls).toBe(8 + shadowLists + (shadowLists > 0 ? 1 : 0) + by("ContinueRetrievePropertiesEx"));
    expect(calls / 2).toBeLessThanOrEqual(10);
    expect(r.datastores.map((d) => d.images.map((i) => i.state).join(","))).toEqual([
      "in-use,aging,in-use,aging,in-use,aging",
      "in-use,aging,in-use,aging,in-use,aging",
    ]);
  });

  it("deleting old images costs 2 calls each and 2 per datastore: the re-checks in one batch, the deletes in another", async () => {
    const P = "purge";
    const n = 5;
    for (let i = 0; i < n; i++) {
      await cacheDisk(DS0, P, `old${i}`);
      await oldMarker(DS0, P, `old${i}`, 30 * DAY);
    }
    const m0 = { ...(await sim.control.stats()).methods };
    const r = await sweepCache(client, opts({ cachePrefix: P, datastores: [DS0], removeUnused: true }));
    const m1 = (await sim.control.stats()).methods;
    const by = (m: string) => (m1[m] ?? 0) - (m0[m] ?? 0);
    expect(r.datastores[0]!.errors).toEqual([]);
    expect(r.datastores[0]!.images.map((i) => i.state)).toEqual(Array(n).fill("removed"));
    for (let i = 0; i < n; i++) expect(await fileExists(client, dc, folderOf(DS0, P, `old${i}`))).toBe(false);
    // The re-checks: a search of each image's folder; the deletes: one task each.
    expect(by("DeleteDatastoreFile_Task")).toBe(n);
    const steady = 3 /* searches */ + 1 /* their outcomes */ + 1 + by("ContinueRetrievePropertiesEx") /* the VM pass */;
    const shadowLists = by("SearchDatastore_Task") - 1 - n; // old shadow-looking folders other tests left (one batch)
    expect(r.roundTrips).toBe(steady + shadowLists + (shadowLists > 0 ? 1 : 0) + 2 * n + 2);
  });

  it("listCache says what is cached where, with sizes, users, markers and holders, and changes nothing", async () => {
    const P = "list";
    const used = await cacheDisk(DS0, P, "used");
    await linkedClone("list-vm", DS0, used);
    await cacheDisk(DS0, P, "aging");
    const m = await oldMarker(DS0, P, "aging", 30 * DAY);
    await cacheDisk(DS0, P, "held");
    await addHolder(client, dc, folderOf(DS0, P, "held"), "h1");
    await cacheDisk(DS0, P, "plain");
    const stale = stagingFor(DS0, "l").root;
    await makeDirectory(client, dc, stale, { createParents: true });
    await age(stale, 2 * HOUR);

    const list = await listCache(client, { datacenter: dc, datastores: [DS0], cachePrefix: P });
    const ds = list[0]!;
    expect(image(ds, "used")).toMatchObject({ state: "in-use", users: ["list-vm"] });
    expect(image(ds, "aging")).toMatchObject({ state: "aging", markedAt: ageMarkerTime(m)!.toISOString() });
    expect(image(ds, "held")).toMatchObject({ state: "kept", holders: ["h1"] });
    expect(image(ds, "plain")).toMatchObject({ state: "kept", users: [] });
    expect(image(ds, "plain").bytes).toBeGreaterThan(0);
    expect(image(ds, "plain").files).toEqual(["plain-flat.vmdk", "plain.vmdk"]);
    expect(await names(folderOf(DS0, P, "plain"))).toEqual(["plain-flat.vmdk", "plain.vmdk"]);
    expect(await fileExists(client, dc, folderOf(DS0, P, "aging"))).toBe(true);
    expect(await fileExists(client, dc, stale)).toBe(true);
  });

  it("reports progress per datastore, and a datastore that fails as an error of its own", async () => {
    const seen: string[] = [];
    const r = await sweepCache(client, { ...opts({ cachePrefix: "none", datastores: [DS0, "NoSuchDS"] }), onDatastore: (ds) => seen.push(ds) });
    expect(seen).toEqual([DS0, "NoSuchDS"]);
    expect(r.datastores[0]!.errors).toEqual([]);
    expect(r.datastores[1]!.errors.join("\n")).toMatch(/NoSuchDS/);
  });
});

describe("sweepCache: a VM whose configuration cannot be read", () => {
  it("deletes no image (its disks may be any of them), still marks and reports", async () => {
    const P = "orphan";
    await cacheDisk(DS0, P, "old");
    await oldMarker(DS0, P, "old", 30 * DAY);
    await cacheDisk(DS0, P, "new");
    // vCenter lists an orphaned or inaccessible VM without its config; the simulator has none,
    // so the VM pass's answer gets one added.
    const withOrphan = new Proxy(client, {
      get(target, prop) {
        if (prop === "invoke") {
          return async (method: string, ...rest: Parameters<VimClient["invoke"]> extends [string, ...infer R] ? R : never) => {
            const answer = await target.invoke(method, ...rest);
            const isVmPass = method === "RetrievePropertiesEx" && JSON.stringify(rest[1] ?? {}).includes('"VirtualMachine"');
            if (!isVmPass) return answer;
            const a = (answer ?? {}) as { objects?: unknown };
            const objects = Array.isArray(a.objects) ? a.objects : a.objects === undefined ? [] : [a.objects];
            return { ...a, objects: [...objects, { obj: new MoRefOf("VirtualMachine", "vm-orphan"), propSet: [{ name: "name", val: "lost-vm" }] }] };
          };
        }
        const v: unknown = Reflect.get(target, prop, target);
        return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const r = await sweepCache(withOrphan, opts({ cachePrefix: P }));
    const ds = r.datastores[0]!;
    expect(image(ds, "old")).toMatchObject({ state: "kept" });
    expect(image(ds, "old").reason).toMatch(/1 VM\(s\) could not be read \(lost-vm\): nothing is deleted/);
    expect(image(ds, "new").state).toBe("marked");
    expect(await fileExists(client, dc, folderOf(DS0, P, "old"))).toBe(true);
    // Without it, the same sweep deletes.
    const again = await sweepCache(client, opts({ cachePrefix: P }));
    expect(image(again.datastores[0], "old").state).toBe("removed");
  });
});
