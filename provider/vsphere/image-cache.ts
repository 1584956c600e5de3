// The datastore image cache, as Nova's and safer: where an image lives
// (`[ds] <cachePrefix>_base/<imageId>/<imageId>.vmdk`), the atomic publish of a staged
// copy, the server-side copy to another datastore, listing, removal, and the sweep of
// staging folders a crash left behind.
//
// Nothing is ever written at an image's final path but by one MoveDatastoreFile_Task
// of a complete staged folder: a reader sees a whole image or none. Writers stage
// under their own `vmware_temp/<uuid>/`, and the move's FileAlreadyExists tells the
// loser of a race (in this process or any other) that the winner's copy is there.
import { randomUUID } from "node:crypto";
import { z } from "zod";
import type { VimClient } from "./client.js";
import {
  copyFile,
  copyVirtualDisk,
  DatastorePath,
  deleteFile,
  extendVirtualDisk,
  fileExists,
  makeDirectory,
  moveFile,
  moveVirtualDisk,
  searchTree,
  statFile,
  treeOrEmpty,
  type FileEntry,
  type SearchRequest,
  type SearchTree,
} from "./datastore.js";
import { FileAlreadyExistsFault, FileNotFoundFault, vimFault } from "./errors.js";
import type { Datacenter } from "./inventory.js";

/** The staging root Nova uses too; each writer works in `vmware_temp/<uuid>/`. */
export const STAGING_FOLDER = "vmware_temp";

/**
 * An image id names a folder and its files: letters, digits, ".", "_", "-", at most 128,
 * not starting with "." (no hidden files, no "..") nor "ts-" (Nova's age markers).
 */
export const imageIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/, "an image id is 1-128 letters, digits, '.', '_' or '-', not starting with '.' or '-'")
  .refine((s) => !s.startsWith("ts-"), "an image id must not start with 'ts-' (the cache's age markers)");

/** A cache prefix: "" (the folder is `_base`) or a folder-safe name. */
export const cachePrefixSchema = z.string().regex(/^([A-Za-z0-9][A-Za-z0-9._-]{0,99})?$/, "a cache prefix is letters, digits, '.', '_' or '-' (or empty)");

/** A disk image or an ISO: what decides the file name and how it is copied. */
export type CachedKind = "disk" | "iso";

export interface CacheLocation {
  /** `[ds] <prefix>_base` */
  base: DatastorePath;
  /** `[ds] <prefix>_base/<imageId>` */
  folder: DatastorePath;
  /** `[ds] <prefix>_base/<imageId>/<imageId>.vmdk` (or `.iso`) */
  disk: DatastorePath;
}

/** Where an image is cached on a datastore. Throws a ZodError for an unsafe id or prefix. */
export function cacheLocation(datastore: string, cachePrefix: string, imageId: string, kind: CachedKind): CacheLocation {
  const id = imageIdSchema.parse(imageId);
  const base = new DatastorePath(datastore, `${cachePrefixSchema.parse(cachePrefix)}_base`);
  const folder = base.join(id);
  return { base, folder, disk: folder.join(`${id}.${kind === "iso" ? "iso" : "vmdk"}`) };
}

/** A fresh staging folder `[ds] vmware_temp/<uuid>`, and the `<imageId>` folder in it that is published. */
export function stagingFor(datastore: string, imageId: string): { root: DatastorePath; folder: DatastorePath } {
  const root = new DatastorePath(datastore, `${STAGING_FOLDER}/${randomUUID()}`);
  return { root, folder: root.join(imageId) };
}

/**
 * Deletes a staging root, whatever happened before: a failure here is logged through the
 * client's onLog, never thrown over the error (or result) of the work it cleans after.
 */
export async function dropStaging(client: VimClient, datacenter: Datacenter, root: DatastorePath): Promise<void> {
  try {
    await deleteFile(client, datacenter, root);
  } catch (err) {
    client.log({ level: "warn", event: "cleanup", message: `could not delete the staging folder ${root}: ${(err as Error).message} (sweepStaging removes it later)` });
  }
}

/**
 * Moves a complete staged `<imageId>` folder to its place in the cache. Resolves
 * `alreadyCached: true` when another writer's copy is there (ours is then left in
 * staging for the caller's clean-up).
 *
 * A cache folder that exists without its disk (the disk was deleted by hand) is not a
 * copy: the staged disk alone is moved into it, again first-writer-wins.
 */
export async function publishStaged(
  client: VimClient,
  datacenter: Datacenter,
  staged: DatastorePath,
  location: CacheLocation,
  kind: CachedKind,
): Promise<{ alreadyCached: boolean }> {
  await makeDirectory(client, datacenter, location.base);
  try {
    await moveFile(client, datacenter, staged, location.folder);
    return { alreadyCached: false };
  } catch (err) {
    if (!(err instanceof FileAlreadyExistsFault)) throw err;
  }
  if (await fileExists(client, datacenter, location.disk)) return { alreadyCached: true };
  const stagedDisk = staged.join(location.disk.basename);
  try {
    if (kind === "iso") await moveFile(client, datacenter, stagedDisk, location.disk);
    else await moveVirtualDisk(client, datacenter, stagedDisk, location.disk);
    return { alreadyCached: false };
  } catch (err) {
    if (err instanceof FileAlreadyExistsFault) return { alreadyCached: true };
    throw err;
  }
}

// ---------------------------------------------------------------------------
// Folder trees (one SearchDatastoreSubFolders_Task instead of one search per folder)

/** Every folder under `root` (itself included) with its entries, sizes and times; empty when `root` does not exist. */
async function treeUnder(client: VimClient, datacenter: Datacenter, root: DatastorePath): Promise<SearchTree> {
  try {
    return await searchTree(client, datacenter, treeRequest(root));
  } catch (err) {
    if (err instanceof FileNotFoundFault) return new Map();
    throw err;
  }
}

/** The search a cache or staging tree is read with (searchMany can run several at once). */
export function treeRequest(root: DatastorePath): SearchRequest {
  return { folder: root, recursive: true, details: true };
}


// ---------------------------------------------------------------------------
// Listing and removal

export interface CachedImage {
  imageId: string;
  folder: DatastorePath;
  /** The image's file (`<id>.vmdk` or `<id>.iso`), undefined when the folder lacks it. */
  disk: DatastorePath | undefined;
  kind: CachedKind | undefined;
  /** Every file in the folder (flat extents, sized copies `<id>.<gb>.vmdk`), with sizes. */
  files: FileEntry[];
  /** Bytes of all files in the folder. */
  bytes: number;
  /** Nova's age marker folders (`ts-YYYY-MM-DD-HH-MM-SS`) in the image folder. */
  markers: string[];
}

/** The cache's base folder on a datastore: `[ds] <prefix>_base`. */
export function cacheBase(datastore: string, cachePrefix: string): DatastorePath {
  return new DatastorePath(datastore, `${cachePrefixSchema.parse(cachePrefix)}_base`);
}

/** The images cached on a datastore under `cachePrefix` (none when the base folder does not exist). */
export async function cachedImages(client: VimClient, datacenter: Datacenter, datastore: string, cachePrefix: string): Promise<CachedImage[]> {
  const base = cacheBase(datastore, cachePrefix);
  return imagesInTree(base, await treeUnder(client, datacenter, base));
}

/** cachedImages from the tree of `base` (treeRequest(cacheBase(...))), read already. */
export function imagesInTree(base: DatastorePath, tree: SearchTree): CachedImage[] {
  const out: CachedImage[] = [];
  for (const entry of tree.get(base.toString()) ?? []) {
    if (!entry.folder || !imageIdSchema.safeParse(entry.name).success) continue;
    const id = entry.name;
    const inside = tree.get(entry.path.toString()) ?? [];
    const files = inside.filter((f) => !f.folder);
    const vmdk = files.find((f) => f.name === `${id}.vmdk`);
    const iso = files.find((f) => f.name === `${id}.iso`);
    out.push({
      imageId: id,
      folder: entry.path,
      disk: (vmdk ?? iso)?.path,
      kind: vmdk ? "disk" : iso ? "iso" : undefined,
      files,
      bytes: files.reduce((n, f) => n + (f.size ?? 0), 0),
      markers: inside.filter((f) => f.folder && f.name.startsWith("ts-")).map((f) => f.name),
    });
  }
  return out.sort((a, b) => a.imageId.localeCompare(b.imageId));
}

/** Deletes an image's cache folder (every file in it); false when it was not there. */
export async function removeCachedImage(client: VimClient, datacenter: Datacenter, datastore: string, cachePrefix: string, imageId: string): Promise<boolean> {
  return deleteFile(client, datacenter, cacheLocation(datastore, cachePrefix, imageId, "disk").folder);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Deletes `vmware_temp/<uuid>` folders nothing has written to for `olderThanMs`: what a
 * crashed writer left. A folder's age is its newest entry's modification anywhere below
 * it, so an upload still running (its file's time moves) is not swept. Other names in
 * `vmware_temp` are not ours and are left alone. Resolves the folders deleted.
 */
export async function sweepStaging(client: VimClient, datacenter: Datacenter, datastore: string, olderThanMs: number, now = new Date()): Promise<DatastorePath[]> {
  const deleted: DatastorePath[] = [];
  for (const stale of await staleStaging(client, datacenter, datastore, olderThanMs, now)) {
    if (await deleteFile(client, datacenter, stale)) deleted.push(stale);
  }
  return deleted;
}

/** The `vmware_temp/<uuid>` folders sweepStaging would delete (one search; deletes nothing). */
export async function staleStaging(client: VimClient, datacenter: Datacenter, datastore: string, olderThanMs: number, now = new Date()): Promise<DatastorePath[]> {
  const root = stagingRoot(datastore);
  return staleInTree(root, await treeUnder(client, datacenter, root), olderThanMs, now);
}

/** A datastore's `vmware_temp` folder. */
export function stagingRoot(datastore: string): DatastorePath {
  return new DatastorePath(datastore, STAGING_FOLDER);
}

/** staleStaging from the tree of `root` (treeRequest(stagingRoot(...))), read already. */
export function staleInTree(root: DatastorePath, tree: SearchTree, olderThanMs: number, now = new Date()): DatastorePath[] {
  const cutoff = now.getTime() - olderThanMs;
  const stale: DatastorePath[] = [];
  for (const top of tree.get(root.toString()) ?? []) {
    if (!top.folder || !UUID.test(top.name)) continue;
    let newest = top.modified?.getTime() ?? Infinity;
    for (const [dir, entries] of tree) {
      if (dir !== top.path.toString() && !dir.startsWith(`${top.path}/`)) continue;
      for (const e of entries) newest = Math.max(newest, e.modified?.getTime() ?? Infinity);
    }
    if (newest < cutoff) stale.push(top.path);
  }
  return stale;
}

// ---------------------------------------------------------------------------
// Copy to another datastore (server-side)

export interface CopyOptions {
  datacenter: Datacenter;
  /** A datastore that has the image cached. */
  fromDatastore: string;
  /** Where it is wanted. */
  datastore: string;
  cachePrefix: string;
  imageId: string;
  kind: CachedKind;
}

export interface CopyResult {
  paths: { disk: DatastorePath; folder: DatastorePath };
  /** It was there already (before the copy, or another writer's copy won). */
  alreadyCached: boolean;
}

const copies = new WeakMap<VimClient, Map<string, Promise<CopyResult>>>();

/**
 * Puts a cached image on another datastore by a server-side copy of the cached one
 * (CopyVirtualDisk_Task, or CopyDatastoreFile_Task for an ISO) into that datastore's
 * staging, then the same atomic publish. Concurrent callers on one client share one copy;
 * other processes are kept apart by the publish's FileAlreadyExists rule.
 *
 * The disk copy sends no destSpec: vCenter does not implement it (only ESXi does), as
 * Nova's sparse path also relies on. vCenter then writes a preallocated disk whose
 * descriptor says busLogic; the adapter the VM's controller uses is the image's recorded
 * adapterType, not the descriptor's.
 */
export function copyToDatastore(client: VimClient, opts: CopyOptions): Promise<CopyResult> {
  const id = imageIdSchema.parse(opts.imageId);
  let perClient = copies.get(client);
  if (!perClient) copies.set(client, (perClient = new Map()));
  const key = JSON.stringify([opts.datacenter.ref.toString(), opts.datastore, opts.cachePrefix, id]);
  const running = perClient.get(key);
  if (running) return running;
  const map = perClient;
  const work = copyOnce(client, { ...opts, imageId: id }).finally(() => map.delete(key));
  map.set(key, work);
  return work;
}

async function copyOnce(client: VimClient, opts: CopyOptions): Promise<CopyResult> {
  const { datacenter: dc, kind } = opts;
  const from = cacheLocation(opts.fromDatastore, opts.cachePrefix, opts.imageId, kind);
  const to = cacheLocation(opts.datastore, opts.cachePrefix, opts.imageId, kind);
  const paths = { disk: to.disk, folder: to.folder };
  if (await fileExists(client, dc, to.disk)) return { paths, alreadyCached: true };
  if (!(await statFile(client, dc, from.disk, { details: false }))) {
    throw vimFault("FileNotFound", `image ${opts.imageId} is not cached on datastore ${opts.fromDatastore} (no ${from.disk})`, { file: from.disk.toString() });
  }
  const staging = stagingFor(opts.datastore, opts.imageId);
  try {
    await makeDirectory(client, dc, staging.folder);
    const target = staging.folder.join(to.disk.basename);
    if (kind === "iso") await copyFile(client, dc, from.disk, target);
    else await copyVirtualDisk(client, dc, from.disk, target);
    return { paths, ...(await publishStaged(client, dc, staging.folder, to, kind)) };
  } finally {
    await dropStaging(client, dc, staging.root);
  }
}

// ---------------------------------------------------------------------------
// Sized bases (Nova's `<imageId>.<rootGb>.vmdk`)

export interface SizedBaseOptions {
  datacenter: Datacenter;
  datastore: string;
  cachePrefix: string;
  imageId: string;
  /** The root disk's size in GiB. */
  rootGb: number;
  /** The cached base's capacity, when known: a smaller root disk is refused. */
  capacityBytes?: number;
}

const GiB = 2 ** 30;
const sized = new WeakMap<VimClient, Map<string, Promise<{ path: DatastorePath; made: boolean }>>>();

/** Where the base of a root disk of `rootGb` GiB lives: `<folder>/<imageId>.<rootGb>.vmdk`. */
export function sizedBaseLocation(datastore: string, cachePrefix: string, imageId: string, rootGb: number): DatastorePath {
  const loc = cacheLocation(datastore, cachePrefix, imageId, "disk");
  return loc.folder.join(`${imageId}.${rootGb}.vmdk`);
}

/**
 * The cached base grown to `rootGb`, for linked clones whose root disk is larger than the
 * image (as Nova: a copy of the base, extended, in the image's cache folder), made once:
 * callers on one client share one making, and other processes race through staging and
 * the move's FileAlreadyExists, as a publish does. Resolves its path and whether this
 * call made it (a caller that fails later removes only what it made).
 */
export function ensureSizedBase(client: VimClient, opts: SizedBaseOptions): Promise<{ path: DatastorePath; made: boolean }> {
  const id = imageIdSchema.parse(opts.imageId);
  if (!Number.isSafeInteger(opts.rootGb) || opts.rootGb <= 0) throw new TypeError(`a root disk of ${opts.rootGb} GiB: want a whole number of GiB, 1 or more`);
  if (opts.capacityBytes !== undefined && opts.rootGb * GiB < opts.capacityBytes) {
    throw new RangeError(`a root disk of ${opts.rootGb} GiB is smaller than image ${id} (${(opts.capacityBytes / GiB).toFixed(2)} GiB): a disk cannot shrink`);
  }
  let perClient = sized.get(client);
  if (!perClient) sized.set(client, (perClient = new Map()));
  const key = JSON.stringify([opts.datacenter.ref.toString(), opts.datastore, opts.cachePrefix, id, opts.rootGb]);
  const running = perClient.get(key);
  if (running) return running.then((r) => ({ ...r, made: false }));
  const map = perClient;
  const work = makeSizedBase(client, { ...opts, imageId: id }).finally(() => map.delete(key));
  map.set(key, work);
  return work;
}

async function makeSizedBase(client: VimClient, opts: SizedBaseOptions): Promise<{ path: DatastorePath; made: boolean }> {
  const { datacenter: dc } = opts;
  const base = cacheLocation(opts.datastore, opts.cachePrefix, opts.imageId, "disk").disk;
  const path = sizedBaseLocation(opts.datastore, opts.cachePrefix, opts.imageId, opts.rootGb);
  if (await fileExists(client, dc, path)) return { path, made: false };
  const staging = stagingFor(opts.datastore, opts.imageId);
  try {
    await makeDirectory(client, dc, staging.folder);
    const staged = staging.folder.join(path.basename);
    await copyVirtualDisk(client, dc, base, staged);
    await extendVirtualDisk(client, dc, staged, opts.rootGb * 1024 * 1024);
    try {
      await moveVirtualDisk(client, dc, staged, path);
      return { path, made: true };
    } catch (err) {
      if (err instanceof FileAlreadyExistsFault) return { path, made: false };
      throw err;
    }
  } finally {
    await dropStaging(client, dc, staging.root);
  }
}
