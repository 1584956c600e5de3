// The image cache's sweeper, as Nova's imagecache and safer: what is in use is read
// from vCenter (every VM's disk backing chains, templates included), not from a
// database of our own; the staging and shadow-VM folders failed work left behind are
// cleaned too (Nova leaks them forever).
//
// Per sweep: per datastore ONE recursive search of `<prefix>_base` (image-cache.ts
// imagesInTree: folders, files, sizes, age markers, holder markers), one of
// `vmware_temp`, one listing of the datastore's root for shadow-VM folders; and ONE
// paged property-collector pass over all VMs for the whole sweep (disk-users.ts
// allVmDisks; maximum_objects VMs per page). The searches are tasks, all started at
// once, and ONE round trip reads every task's outcome (datastore.ts searchMany): 3
// calls per datastore plus 1, whatever the number of images. Changes cost on top, each
// kind in one batch per datastore: markers made 1 call each; markers removed 1 each
// (a delete task) plus 1 (every task's outcome in one read); images deleted 2 each plus
// 2 (the re-check searches just before, all in one batch, then the deletes in another).
//
// Per image (Nova's rules, `remove_unused_base_images`,
// `remove_unused_original_minimum_age_seconds`):
// - in use: some VM's disk chain (or CD-ROM / floppy backing) has a file anywhere in
//   the image's folder (the image itself, a sized base `<id>.<gb>.vmdk` a linked clone
//   grows from, an ISO an Instance boots from, ...). Its age markers are removed (it is
//   used again). A full copy is not a user: once copied it references nothing in the
//   cache, and deleting its origin does not touch it (Nova counts it by its image_ref
//   in its database; vCenter keeps no such link, so here its origin ages like any other).
// - unused, no marker: an age marker `ts-YYYY-MM-DD-HH-MM-SS` (UTC, the sweep's `now`)
//   folder is made in the image folder. Unused with a marker younger than the minimum
//   age: "aging". The NEWEST marker counts (two sweeps may each have made one; the
//   newest gives the shortest age, the safe side).
// - unused with a marker older than the minimum age: the whole image folder is deleted
//   (sized bases, holder files and markers with it).
// - never touched: a folder without its `<id>.vmdk` / `<id>.iso` (a publish moves
//   whole folders from staging, so one without its disk is being filled in by
//   publishStaged's second path, or was damaged by hand: either way not ours to drop);
//   anything outside `<prefix>_base/<imageId>/`; and nothing is deleted while some VM's
//   configuration cannot be read (its disks may be any of them).
//
// Held images (image-holders.ts `holder-<id>.json`: an Image resource of some stack
// declares it wants the image): reported "kept", never marked nor deleted, and their
// age markers are removed as for a used image. Nova's rule is age-only because Nova
// fetches an image again from Glance on the next boot; here the Image resource IS the
// declaration that the image is wanted in the cache, and deleting it under the
// resource would break the next Instance of that stack (its state says "cached").
// So the sweeper ages only images no Image resource holds: copies whose holder was
// deleted while a VM still used them, images of a cache shared with another tool,
// and the like. A stale holder left by a crash keeps the image: the report names the
// holders so an operator can see it; losing a wanted image is worse.
//
// The window between the read and a delete. The VM pass happens once, before the
// deletes; an Instance create that starts using an image after the pass would not be
// seen. What closes it is a protocol with two sides: whoever makes a VM from a cached
// image (a linked clone, a sized base, a full copy) removes the image's age markers
// with clearAgeMarkers BEFORE it starts (the Instance create's side), and the sweeper,
// right before deleting an image, lists the folder again (one search) and deletes only
// when the marker it judged by is still there and no holder appeared. Without the
// creator's side, the window is the time from the VM pass to the delete, which grows
// with the deletes before it in the same sweep. What is left is the time between
// that re-check and the DeleteDatastoreFile_Task (one round trip): an Instance must
// remove the marker AND finish its CreateVM_Task inside it for a VM to lose its base,
// and a create that starts later finds the folder gone and fails (vCenter refuses a
// disk whose parent is missing) rather than making a broken VM. A publish racing a
// delete is the same: the Image resource's holder file, written right after its
// publish (or its finding the image cached), stops the re-check; a move into a folder being deleted fails or lands in a fresh
// folder (FileAlreadyExists rules in image-cache.ts).
//
// Staging: `vmware_temp/<uuid>` folders nothing wrote to for the grace period
// (image-cache.ts staleStaging). Shadow VMs: the NFC import of a streamOptimized image
// makes a VM `image-<id48>-<8hex>` whose folder is `[ds] image-<id48>-<8hex>`
// (image-publish.ts); a folder of that name older than the grace period that no VM
// (registered, readable or not) has as its name or folder, with no file written within
// the grace period and nothing in it but files named as vCenter names a VM's, is a leak
// and is deleted.
//
// Not seen: VMs of another vCenter whose datastores share this cache (Nova's shared
// cache_prefix across compute nodes has the same blind spot); markers are named by the
// sweeping machine's clock, so cron hosts should keep time (skew only shifts the age).
//
// removeUnused false: nothing is marked, unmarked or deleted (staging and shadow
// folders included); the report says what is there. Dry run: nothing changes; the
// report says what a real sweep would do ("would-remove", "marked" with the reason
// "dry run", and the staging / shadow folders it would clean).
import type { VimClient } from "./client.js";
import { DatastorePath, deleteFile, deleteMany, listFolderIfExists, makeDirectory, searchMany, treeOrEmpty, type FileEntry, type SearchRequest } from "./datastore.js";
import { allVmDisks, type DiskUser } from "./disk-users.js";
import { FileNotFoundFault } from "./errors.js";
import { cacheBase, cachePrefixSchema, imagesInTree, staleInTree, stagingRoot, treeRequest, type CachedImage } from "./image-cache.js";
import { holdersIn } from "./image-holders.js";
import type { Datacenter } from "./inventory.js";

export interface SweepOptions {
  datacenter: Datacenter;
  /** Datastore names, already chosen by the caller. */
  datastores: string[];
  /** "" = "_base". */
  cachePrefix: string;
  /** Nova's remove_unused_base_images. */
  removeUnused: boolean;
  /** Nova's remove_unused_original_minimum_age_seconds. */
  minAgeSeconds: number;
  /** Default 3600: vmware_temp/<uuid> folders and shadow-VM folders older than this are cleaned. */
  stagingGraceSeconds?: number;
  dryRun?: boolean;
  now?: Date;
  /** Progress: called once per datastore, when it is done. */
  onDatastore?: (ds: string, report: DatastoreSweep) => void;
}

export interface ImageSweep {
  imageId: string;
  bytes: number;
  state: "in-use" | "marked" | "aging" | "removed" | "would-remove" | "kept";
  /** VM names whose disk chains use a file of the image's folder. */
  users: string[];
  /** ISO time of its (newest) ts- marker. */
  markedAt?: string;
  files: string[];
  /** Why it is kept (or what else the sweep saw), in words. */
  reason?: string;
  /** Image resources (holder ids) that hold it. */
  holders?: string[];
}

export interface DatastoreSweep {
  datastore: string;
  images: ImageSweep[];
  bytesFreed: number;
  stagingCleaned: string[];
  shadowCleaned: string[];
  errors: string[];
}

export interface SweepReport {
  startedAt: string;
  finishedAt: string;
  dryRun: boolean;
  datastores: DatastoreSweep[];
  /** SOAP round trips the client made during the sweep (other work on a shared client included). */
  roundTrips?: number;
}

// ---------------------------------------------------------------------------
// Age markers

const MARKER = /^ts-(\d{4})-(\d{2})-(\d{2})-(\d{2})-(\d{2})-(\d{2})$/;

/** Nova's marker name for a time: `ts-YYYY-MM-DD-HH-MM-SS`, UTC. */
export function ageMarkerName(at: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `ts-${at.getUTCFullYear()}-${p(at.getUTCMonth() + 1)}-${p(at.getUTCDate())}-${p(at.getUTCHours())}-${p(at.getUTCMinutes())}-${p(at.getUTCSeconds())}`;
}

/** The time a marker name says, or undefined for a name that is not one. */
export function ageMarkerTime(name: string): Date | undefined {
  const m = MARKER.exec(name);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const t = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  return Number.isNaN(t.getTime()) || t.getUTCMonth() !== mo - 1 ? undefined : t;
}

/** The newest readable marker of a list of names. */
function newestMarker(names: string[]): { name: string; at: Date } | undefined {
  let best: { name: string; at: Date } | undefined;
  for (const name of names) {
    const at = ageMarkerTime(name);
    if (at && (!best || at > best.at)) best = { name, at };
  }
  return best;
}

/**
 * Removes an image's age markers: the image is used again. An Instance calls it before
 * it creates a VM on the image (the sweeper re-checks the marker right before a delete).
 * Resolves how many were removed (0 when the folder is gone).
 */
export async function clearAgeMarkers(client: VimClient, datacenter: Datacenter, imageFolder: DatastorePath): Promise<number> {
  const entries = (await listFolderIfExists(client, datacenter, imageFolder, { matchPattern: ["ts-*"] })) ?? [];
  const markers = entries.filter((e) => e.folder && e.name.startsWith("ts-"));
  let removed = 0;
  for (const d of await deleteMany(client, datacenter, markers.map((e) => e.path))) {
    if (d.status === "rejected") throw d.reason;
    if (d.value) removed++;
  }
  return removed;
}

// ---------------------------------------------------------------------------
// What uses what (one pass)

interface Usage {
  /** Per image folder ("[ds] <prefix>_base/<id>"), the names of the VMs using a file in it. */
  users: Map<string, Set<string>>;
  unreadable: DiskUser[];
  /** Every VM's name and folder ("[ds] folder"), readable or not. */
  vmNames: Set<string>;
  vmFolders: Set<string>;
}

async function readUsage(client: VimClient, baseFolder: string): Promise<Usage> {
  const { vms, unreadable } = await allVmDisks(client);
  const users = new Map<string, Set<string>>();
  const vmNames = new Set<string>(unreadable.map((u) => u.name));
  const vmFolders = new Set<string>();
  for (const vm of vms) {
    vmNames.add(vm.name);
    if (vm.vmPathName) vmFolders.add(DatastorePath.parse(vm.vmPathName).parent.toString());
    for (const file of vm.files) {
      const p = DatastorePath.parse(file);
      const parts = p.path.split("/");
      // A file in a folder below the datastore's root: the folder is (also) the VM's.
      if (parts.length >= 2) vmFolders.add(new DatastorePath(p.datastore, parts[0]).toString());
      if (parts.length < 3 || parts[0] !== baseFolder) continue;
      const key = new DatastorePath(p.datastore, `${parts[0]}/${parts[1]}`).toString();
      let set = users.get(key);
      if (!set) users.set(key, (set = new Set()));
      set.add(vm.name);
    }
  }
  return { users, unreadable, vmNames, vmFolders };
}

// ---------------------------------------------------------------------------
// The sweep

const SHADOW = /^image-[A-Za-z0-9_][A-Za-z0-9._-]{0,47}-[0-9a-f]{8}$/;

interface Listed {
  datastore: string;
  images: CachedImage[] | undefined;
  error?: string;
}

interface Listings {
  listed: Listed[];
  /** Per datastore (when asked for): the staging and shadow-VM leftovers. */
  leftovers: Map<string, Leftovers>;
}

/**
 * Every datastore's searches in one batch (searchMany: each search task started at once,
 * one round trip for all their outcomes): the cache tree, and with `leftovers` the
 * staging tree and the root's `image-*` folders.
 */
async function listAll(client: VimClient, datacenter: Datacenter, datastores: string[], cachePrefix: string, leftovers?: { graceMs: number; now: Date }): Promise<Listings> {
  const requests: SearchRequest[] = [];
  for (const ds of datastores) {
    requests.push(treeRequest(cacheBase(ds, cachePrefix)));
    if (leftovers) requests.push(treeRequest(stagingRoot(ds)), { folder: new DatastorePath(ds), matchPattern: ["image-*"], details: true });
  }
  const results = await searchMany(client, datacenter, requests);
  const out: Listings = { listed: [], leftovers: new Map() };
  let i = 0;
  for (const datastore of datastores) {
    const base = results[i++]!;
    try {
      out.listed.push({ datastore, images: imagesInTree(cacheBase(datastore, cachePrefix), treeOrEmpty(base)) });
    } catch (err) {
      out.listed.push({ datastore, images: undefined, error: `listing the cache failed: ${message(err)}` });
    }
    if (!leftovers) continue;
    const staging = results[i++]!;
    const root = results[i++]!;
    out.leftovers.set(datastore, {
      staging: read(() => staleInTree(stagingRoot(datastore), treeOrEmpty(staging), leftovers.graceMs, leftovers.now)),
      shadows: read(() => {
        if (root.status === "rejected") throw root.reason;
        return root.value.get(new DatastorePath(datastore).toString()) ?? [];
      }),
    });
  }
  return out;
}

function read<T>(fn: () => T): Read<T> {
  try {
    return { ok: fn() };
  } catch (err) {
    return { error: message(err) };
  }
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Image sweep record before any decision. */
function baseRecord(img: CachedImage, users: string[]): ImageSweep {
  const rec: ImageSweep = { imageId: img.imageId, bytes: img.bytes, state: "kept", users, files: img.files.map((f) => f.name).sort() };
  const marker = newestMarker(img.markers);
  if (marker) rec.markedAt = marker.at.toISOString();
  const holders = holdersIn(img.files.map((f) => f.name));
  if (holders.length) rec.holders = holders;
  return rec;
}

export async function sweepCache(client: VimClient, opts: SweepOptions): Promise<SweepReport> {
  const now = opts.now ?? new Date();
  const started = new Date();
  const before = client.stats.roundTrips;
  const dryRun = opts.dryRun ?? false;
  const act = !dryRun && opts.removeUnused;
  const prefix = cachePrefixSchema.parse(opts.cachePrefix);
  const graceMs = (opts.stagingGraceSeconds ?? 3600) * 1000;
  const dc = opts.datacenter;

  // The listings first (every datastore's three searches in one batch), then the VM
  // pass: a VM that uses an image listed here exists before the pass (or it starts after
  // it, which clearAgeMarkers + the re-check cover).
  const { listed, leftovers } = await listAll(client, dc, opts.datastores, prefix, opts.removeUnused ? { graceMs, now } : undefined);
  const usage = await readUsage(client, `${prefix}_base`);

  const out: DatastoreSweep[] = [];
  for (const l of listed) {
    const report: DatastoreSweep = { datastore: l.datastore, images: [], bytesFreed: 0, stagingCleaned: [], shadowCleaned: [], errors: l.error ? [l.error] : [] };
    // Each image judged; then the datastore's marker changes together, and the images to
    // delete re-checked and deleted together, in a batch each.
    const done = (l.images ?? []).map((img) => judgeImage(img, usage, opts, { now, dryRun, act }));
    const markFailed = await applyMarkers(client, dc, done, now, report);
    const removeFailed = await removeJudged(client, dc, done.filter((j) => j.remove !== undefined), report);
    for (const j of done) if (!markFailed.has(j) && !removeFailed.has(j)) report.images.push(j.rec);
    const left = leftovers.get(l.datastore);
    if (left) {
      await cleanStaging(client, dc, left.staging, act, report);
      await cleanShadows(client, dc, left.shadows, graceMs, now, act, usage, report);
    }
    out.push(report);
    opts.onDatastore?.(l.datastore, report);
  }
  return { startedAt: started.toISOString(), finishedAt: new Date().toISOString(), dryRun, datastores: out, roundTrips: client.stats.roundTrips - before };
}

/** An image's record, and what is to be done to it (each kind in one batch per datastore). */
interface Judged {
  img: CachedImage;
  rec: ImageSweep;
  /** Its age markers are to go (it is used, or held). */
  clear?: true;
  /** An age marker is to be made (first seen unused). */
  mark?: true;
  /** It is to be deleted: the marker it was judged by. */
  remove?: { marker: string };
}

/**
 * The markers' changes of a datastore's images: every marker to remove in one batch of
 * delete tasks (deleteMany: a call each, one round trip for all outcomes), the new ones
 * made side by side (MakeDirectory answers at once: a call each). Resolves the images
 * whose change failed (their errors are in the report).
 */
async function applyMarkers(client: VimClient, dc: Datacenter, judged: Judged[], now: Date, report: DatastoreSweep): Promise<Set<Judged>> {
  const failed = new Set<Judged>();
  const fail = (j: Judged, err: unknown) => {
    if (!failed.has(j)) report.errors.push(`image ${j.img.imageId}: ${message(err)}`);
    failed.add(j);
  };
  const clearing = judged.filter((j) => j.clear);
  const markers = clearing.flatMap((j) => j.img.markers.map((m) => ({ j, path: j.img.folder.join(m) })));
  const making = judged.filter((j) => j.mark);
  const [deleted, made] = await Promise.all([
    deleteMany(client, dc, markers.map((m) => m.path)),
    Promise.allSettled(making.map((j) => makeMarker(client, dc, j.img.folder, now))),
  ]);
  for (const [i, m] of markers.entries()) {
    const d = deleted[i]!;
    if (d.status === "rejected") fail(m.j, d.reason);
  }
  for (const j of clearing) if (!failed.has(j)) delete j.rec.markedAt;
  for (const [i, j] of making.entries()) {
    const m = made[i]!;
    if (m.status === "rejected") fail(j, m.reason);
  }
  return failed;
}

/** What the sweep does to an image, by Nova's rules (see the top); changes nothing itself. */
function judgeImage(img: CachedImage, usage: Usage, opts: SweepOptions, run: { now: Date; dryRun: boolean; act: boolean }): Judged {
  const users = [...(usage.users.get(img.folder.toString()) ?? [])].sort();
  const rec = baseRecord(img, users);
  // Its markers go (used again), with every other image's of the datastore in one batch.
  const clear = (): Judged => (run.act && img.markers.length ? { img, rec, clear: true } : { img, rec });
  if (users.length) {
    rec.state = "in-use";
    return clear();
  }
  if (!img.disk) {
    rec.reason = `no ${img.imageId}.vmdk or ${img.imageId}.iso in the folder: being published, or damaged; left alone`;
    return { img, rec };
  }
  if (rec.holders) {
    rec.reason = `held by ${rec.holders.length === 1 ? "an Image resource" : `${rec.holders.length} Image resources`} (${rec.holders.join(", ")}): not aged`;
    return clear();
  }
  if (!opts.removeUnused) {
    rec.reason = "unused; removeUnusedBaseImages is false";
    return { img, rec };
  }
  const marker = newestMarker(img.markers);
  if (!marker) {
    rec.state = "marked";
    rec.markedAt = new Date(Math.floor(run.now.getTime() / 1000) * 1000).toISOString();
    if (run.dryRun) {
      rec.reason = "dry run: the marker was not made";
      return { img, rec };
    }
    return { img, rec, mark: true };
  }
  const ageSeconds = (run.now.getTime() - marker.at.getTime()) / 1000;
  if (ageSeconds < opts.minAgeSeconds) {
    rec.state = "aging";
    rec.reason = `unused for ${Math.floor(ageSeconds)} s of ${opts.minAgeSeconds}`;
    return { img, rec };
  }
  if (usage.unreadable.length) {
    rec.reason = `unused for ${Math.floor(ageSeconds)} s, but ${usage.unreadable.length} VM(s) could not be read (${usage.unreadable.map((u) => u.name).join(", ")}): nothing is deleted`;
    return { img, rec };
  }
  if (run.dryRun) {
    rec.state = "would-remove";
    return { img, rec };
  }
  return { img, rec, remove: { marker: marker.name } };
}

/**
 * The deletes, for every image judged old enough on a datastore at once: the re-check
 * (see the file comment: the marker judged by still there, no holder since) lists every
 * such folder in one batch, then the ones that pass are deleted in another (searchMany,
 * deleteMany: a call each and one round trip per batch). Resolves the ones that failed
 * (their errors are in the report).
 */
async function removeJudged(client: VimClient, dc: Datacenter, candidates: Judged[], report: DatastoreSweep): Promise<Set<Judged>> {
  const failed = new Set<Judged>();
  if (candidates.length === 0) return failed;
  const fail = (j: Judged, err: unknown) => {
    failed.add(j);
    report.errors.push(`image ${j.img.imageId}: ${message(err)}`);
  };
  const listings = await searchMany(client, dc, candidates.map((j) => ({ folder: j.img.folder })));
  const doomed: Judged[] = [];
  for (const [i, j] of candidates.entries()) {
    const { rec, img } = j;
    const listing = listings[i]!;
    if (listing.status === "rejected") {
      if (!(listing.reason instanceof FileNotFoundFault)) {
        fail(j, listing.reason);
        continue;
      }
      rec.state = "removed";
      rec.reason = "already gone (another sweep removed it)";
      continue;
    }
    const current = listing.value.get(img.folder.toString()) ?? [];
    if (!current.some((e) => e.name === j.remove!.marker)) {
      rec.state = "kept";
      rec.reason = "its age marker was removed since the sweep read it: used again";
      delete rec.markedAt;
      continue;
    }
    const holders = holdersIn(current.filter((e) => !e.folder).map((e) => e.name));
    if (holders.length) {
      rec.holders = holders;
      rec.reason = `held since the sweep read it (${holders.join(", ")}): not aged`;
      continue;
    }
    doomed.push(j);
  }
  const deleted = await deleteMany(client, dc, doomed.map((j) => j.img.folder));
  for (const [i, j] of doomed.entries()) {
    const d = deleted[i]!;
    if (d.status === "rejected") {
      fail(j, d.reason);
      continue;
    }
    j.rec.state = "removed";
    if (d.value) report.bytesFreed += j.img.bytes;
    else j.rec.reason = "already gone (another sweep removed it)";
  }
  return failed;
}

/** Makes the age marker; a marker of the same second is fine, a vanished image folder too. */
async function makeMarker(client: VimClient, dc: Datacenter, folder: DatastorePath, now: Date): Promise<void> {
  try {
    // Never createParents: a folder deleted meanwhile must not come back empty.
    await makeDirectory(client, dc, folder.join(ageMarkerName(now)), { createParents: false });
  } catch (err) {
    if (!(err instanceof FileNotFoundFault)) throw err;
  }
}

/** A listing, or why it failed (read before it is needed: it must never reject unawaited). */
type Read<T> = { ok: T } | { error: string };

interface Leftovers {
  /** `vmware_temp/<uuid>` folders older than the grace period. */
  staging: Read<DatastorePath[]>;
  /** The datastore root's `image-*` entries. */
  shadows: Read<FileEntry[]>;
}

async function cleanStaging(client: VimClient, dc: Datacenter, stale: Read<DatastorePath[]>, act: boolean, report: DatastoreSweep): Promise<void> {
  if ("error" in stale) {
    report.errors.push(`staging: ${stale.error}`);
    return;
  }
  if (!act) {
    report.stagingCleaned.push(...stale.ok.map((f) => f.toString()));
    return;
  }
  // In one batch: a delete task each, one round trip for all their outcomes.
  const deleted = await deleteMany(client, dc, stale.ok);
  for (const [i, folder] of stale.ok.entries()) {
    const d = deleted[i]!;
    if (d.status === "rejected") report.errors.push(`staging: ${message(d.reason)}`);
    else if (d.value) report.stagingCleaned.push(folder.toString());
  }
}

function newestIn(entries: FileEntry[]): number {
  return entries.reduce((n, e) => Math.max(n, e.modified?.getTime() ?? Infinity), -Infinity);
}

async function cleanShadows(client: VimClient, dc: Datacenter, root: Read<FileEntry[]>, graceMs: number, now: Date, act: boolean, usage: Usage, report: DatastoreSweep): Promise<void> {
  const cutoff = now.getTime() - graceMs;
  if ("error" in root) {
    report.errors.push(`shadow VM folders: ${root.error}`);
    return;
  }
  try {
    const candidates = root.ok.filter(
      (e) =>
        e.folder &&
        SHADOW.test(e.name) &&
        !usage.vmNames.has(e.name) &&
        !usage.vmFolders.has(e.path.toString()) &&
        (e.modified?.getTime() ?? Infinity) < cutoff,
    );
    // Every candidate's folder listed in one batch (a search each, one round trip for all).
    const listings = await searchMany(client, dc, candidates.map((c) => ({ folder: c.path, details: true })));
    for (const [i, c] of candidates.entries()) {
      // Its files' times too: an import still writing is not a leak. And only what vCenter
      // names after the VM (image-x.vmx, image-x.vmdk, image-x-flat.vmdk, vmware.log...): a
      // folder of that name with anything else in it is not a shadow VM's.
      const inside = treeOrEmpty(listings[i]!).get(c.path.toString()) ?? [];
      if (newestIn(inside) >= cutoff) continue;
      if (inside.some((e) => e.folder || !(e.name.startsWith(c.name) || /^vmware(-\d+)?\.log$/.test(e.name)))) continue;
      if (!act || (await deleteFile(client, dc, c.path))) report.shadowCleaned.push(c.path.toString());
    }
  } catch (err) {
    report.errors.push(`shadow VM folders: ${message(err)}`);
  }
}

// ---------------------------------------------------------------------------
// Listing

/** What is cached where, with sizes, users, markers and holders; changes nothing. */
export async function listCache(client: VimClient, opts: Pick<SweepOptions, "datacenter" | "datastores" | "cachePrefix">): Promise<DatastoreSweep[]> {
  const prefix = cachePrefixSchema.parse(opts.cachePrefix);
  const { listed } = await listAll(client, opts.datacenter, opts.datastores, prefix);
  const usage = await readUsage(client, `${prefix}_base`);
  return listed.map((l) => ({
    datastore: l.datastore,
    bytesFreed: 0,
    stagingCleaned: [],
    shadowCleaned: [],
    errors: l.error ? [l.error] : [],
    images: (l.images ?? []).map((img) => {
      const rec = baseRecord(img, [...(usage.users.get(img.folder.toString()) ?? [])].sort());
      if (rec.users.length) rec.state = "in-use";
      else if (rec.holders) rec.reason = "held by an Image resource";
      else if (rec.markedAt) rec.state = "aging";
      else if (!img.disk) rec.reason = "no image file: being published, or damaged";
      return rec;
    }),
  }));
}
