// Where an Image's copies are and how they get there or go: the datastore choice, the
// upload from the source to one datastore and server-side copies to the others (each
// taken back if a later step fails), the copies' listing, and the release of a copy
// (holder markers, VMs that use it). The Image handler (image.ts) calls one per step.
import type { VimClient } from "../vsphere/client.js";
import { parseChecksum, type Checksum } from "../vsphere/checksum.js";
import { listFolderIfExists, searchMany, statFile, treeOrEmpty, type DatastorePath, type FileEntry } from "../vsphere/datastore.js";
import { selectDatastore } from "../vsphere/datastore-select.js";
import type { Alongside } from "../vsphere/property.js";
import { diskUsage } from "../vsphere/disk-users.js";
import { VSphereError } from "../vsphere/errors.js";
import { cacheLocation, copyToDatastore, removeCachedImage, type CachedKind } from "../vsphere/image-cache.js";
import { ChecksumMismatchError, SourceChangedError } from "../vsphere/image-errors.js";
import { holdersIn, holdersOf, removeHolder } from "../vsphere/image-holders.js";
import { publishImage } from "../vsphere/image-publish.js";
import { openSource, type InspectedSource, type SourceDigests } from "../vsphere/image-source.js";
import type { Cluster, Datacenter } from "../vsphere/inventory.js";
import type { Resolved } from "./image-inputs.js";

/** What identifies a cached image and this resource's hold on it. */
export interface CacheEntry {
  cachePrefix: string;
  imageId: string;
  kind: CachedKind;
  holder: string;
}

/** One cached copy. */
export interface ImageCopy {
  /** `[ds] <prefix>_base/<imageId>/<imageId>.vmdk` (or `.iso`): what an Instance's disk is cloned from. */
  path: string;
  folder: string;
  /** Bytes of the image's files in the folder. */
  sizeBytes: number;
}

export function checksumOf(r: { checksum?: string | undefined }): Checksum | undefined {
  if (!r.checksum) return undefined;
  const parsed = parseChecksum(r.checksum);
  if ("error" in parsed) throw new TypeError(parsed.error);
  return parsed.checksum;
}

export function algorithmsFor(r: { computeMd5?: boolean; checksum?: string | undefined }): Array<"sha256" | "md5"> {
  return r.computeMd5 || checksumOf(r)?.algorithm === "md5" ? ["sha256", "md5"] : ["sha256"];
}

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * The datastores to cache on: the ones named (each checked as Nova's selection checks a
 * candidate: type, accessible, not in maintenance, on every host, room for the image), or
 * one chosen as Nova does — but a fitting datastore that has the image cached already
 * wins over the one with the most free space, so stacks sharing a cache share the copy.
 */
export async function chooseDatastores(
  client: VimClient,
  cluster: Cluster,
  named: string[] | undefined,
  regex: string | undefined,
  requiredBytes: number | undefined,
  cachedAlready?: (ds: string) => Promise<boolean>,
  /** Reads to make in the same round trip as the (first) datastore read. */
  alongside?: Alongside,
): Promise<string[]> {
  if (named) {
    for (const [i, name] of named.entries()) {
      await selectDatastore(client, cluster, { datastoreRegex: `${escapeRegex(name)}$`, requiredBytes, ...(i === 0 && alongside ? { alongside } : {}) });
    }
    return [...new Set(named)];
  }
  const { datastore, candidates } = await selectDatastore(client, cluster, { datastoreRegex: regex, requiredBytes, ...(alongside ? { alongside } : {}) });
  if (cachedAlready && candidates.length > 1) {
    const hits = await Promise.all(candidates.map((d) => cachedAlready(d.name)));
    const hit = candidates.find((_, i) => hits[i]);
    if (hit) return [hit.name];
  }
  return [datastore.name];
}

/** Copies present in each folder: the files, whose sizes make the copy's size (holder markers not counted). */
export async function readCopies(client: VimClient, dc: Datacenter, datastores: string[], cachePrefix: string, imageId: string, kind: CachedKind): Promise<{ cached: Record<string, ImageCopy>; missing: string[] }> {
  const cached: Record<string, ImageCopy> = {};
  const missing: string[] = [];
  // Every datastore's folder in one batch: a search each, one round trip for their outcomes.
  const locs = datastores.map((ds) => cacheLocation(ds, cachePrefix, imageId, kind));
  const listings = await searchMany(client, dc, locs.map((loc) => ({ folder: loc.folder, details: true })));
  for (const [i, ds] of datastores.entries()) {
    const loc = locs[i]!;
    const files = treeOrEmpty(listings[i]!).get(loc.folder.toString()) ?? [];
    if (!files.some((f) => f.name === loc.disk.basename)) {
      missing.push(ds);
      continue;
    }
    const sizeBytes = files.filter((f) => !f.folder && !f.name.startsWith("holder-")).reduce((n, f) => n + (f.size ?? 0), 0);
    cached[ds] = { path: loc.disk.toString(), folder: loc.folder.toString(), sizeBytes };
  }
  return { cached, missing };
}

/**
 * Whether a datastore has the image cached, one search per datastore however often it is
 * asked (the datastore choice and the placement both ask).
 */
export function cachedLook(client: VimClient, dc: Datacenter, cachePrefix: string, imageId: string, kind: CachedKind): (ds: string) => Promise<boolean> {
  const seen = new Map<string, Promise<boolean>>();
  return (ds) => {
    let look = seen.get(ds);
    if (!look) {
      look = statFile(client, dc, cacheLocation(ds, cachePrefix, imageId, kind).disk, { details: false }).then((e) => e !== undefined);
      seen.set(ds, look);
    }
    return look;
  };
}

export interface Placed {
  /** Datastores the image was put on by this call (not there before): removed again if the caller fails. */
  published: string[];
  sha256?: string;
  md5?: string;
  bytes?: number;
}

/**
 * Puts the image on every datastore in `wanted`: copied server-side from one that has it,
 * else uploaded once from the source to the first and copied from there.
 */
export async function place(
  client: VimClient,
  opts: {
    cluster: Cluster;
    cachePrefix: string;
    imageId: string;
    kind: CachedKind;
    wanted: string[];
    inspected: () => Promise<InspectedSource>;
    r: Resolved;
    /** The content's sha256 when known (a file hashed before, or the state's): the upload must match it. */
    sha256: string | undefined;
    /** Whether a datastore has the image cached, when the caller has looked already (cachedLook); default: a search. */
    isCached?: (ds: string) => Promise<boolean>;
  },
): Promise<Placed> {
  const { cluster, cachePrefix, imageId, kind, wanted } = opts;
  const dc = cluster.datacenter;
  const isCached = opts.isCached ?? cachedLook(client, dc, cachePrefix, imageId, kind);
  const hits = await Promise.all(wanted.map(isCached));
  const out: Placed = { published: [] };
  try {
    let from = wanted.find((_, i) => hits[i]);
    if (from === undefined) {
      from = wanted[0]!;
      const { mine, ...digests } = await upload(client, { ...opts, datastore: from });
      Object.assign(out, digests);
      if (mine) out.published.push(from);
    }
    const source = from;
    await Promise.all(
      wanted
        .filter((ds, i) => ds !== source && !hits[i])
        .map(async (ds) => {
          const copied = await copyToDatastore(client, { datacenter: dc, fromDatastore: source, datastore: ds, cachePrefix, imageId, kind });
          if (!copied.alreadyCached) out.published.push(ds);
        }),
    );
    return out;
  } catch (err) {
    // Whatever this call put in the cache goes again (a copy to a second datastore failed, or an OVA's checksum).
    await rollback(client, dc, out.published, cachePrefix, imageId, kind);
    throw err;
  }
}

/**
 * Uploads the image from its source to one datastore. Resolves the source's digests and
 * `mine`, or `mine: false` when another writer's copy was there first (nothing was read).
 */
async function upload(
  client: VimClient,
  opts: { cluster: Cluster; cachePrefix: string; imageId: string; kind: CachedKind; datastore: string; inspected: () => Promise<InspectedSource>; r: Resolved; sha256: string | undefined },
): Promise<Omit<Placed, "published"> & { mine: boolean }> {
  const { cluster, cachePrefix, imageId, kind } = opts;
  const dc = cluster.datacenter;
  const inspected = await opts.inspected();
  const algorithms = algorithmsFor(opts.r);
  const expected = checksumOf(opts.r);
  const direct = !inspected.conversion && inspected.info.format !== "ova";
  const opened = await openSource(inspected, {
    // Sent as they are: the upload hashes them, once.
    algorithms: direct ? [] : algorithms,
    ...(opts.r.adapterType ? { adapterType: opts.r.adapterType } : {}),
    ...(opts.r.diskType === "thin" || opts.r.diskType === "preallocated" ? { diskType: opts.r.diskType } : {}),
  });
  // How the source's digests are checked against the declared checksum (and a file's earlier hash):
  //  - bytes sent as they are (VMDK, descriptor extents, ISO, raw): by publishImage, on what it sent, before the move into the cache;
  //  - converted: the source was read whole before conversion, so before anything is sent;
  //  - OVA: only once the tar has been read to its end, after the disk went: a mismatch takes the copy back out (place's rollback).
  const check = (d: SourceDigests) => {
    if (expected && d[expected.algorithm] !== expected.hex) throw new ChecksumMismatchError(inspected.name, expected.algorithm, expected.hex, d[expected.algorithm] ?? "(not computed)");
    if (opts.sha256 && d.sha256 !== opts.sha256) throw new SourceChangedError(inspected.name, [`sha256 ${opts.sha256} → ${d.sha256}`]);
  };
  try {
    if (inspected.conversion) check(await opened.digests);
    const result = await publishImage(client, {
      datacenter: dc,
      datastore: opts.datastore,
      cachePrefix,
      imageId,
      source: opened.publish,
      // A file hashed just before (and checked unchanged by openSource) is not hashed again on the way.
      ...(direct && opts.sha256 ? { hash: false, checksums: [] } : { checksums: algorithms, ...(direct && expected ? { expected } : {}) }),
      knownAbsent: true,
      resourcePool: cluster.resourcePool,
      vmFolder: dc.vmFolder,
    });
    if (result.alreadyCached) return { mine: false };
    const d = direct ? { sha256: result.sha256 ?? opts.sha256!, bytes: result.bytes, ...(result.md5 ? { md5: result.md5 } : {}) } : await opened.digests;
    try {
      check(d);
    } catch (err) {
      // Published, then found wrong: take it back out here, where it is known to be ours.
      await rollback(client, dc, [opts.datastore], cachePrefix, imageId, kind);
      throw err;
    }
    return { mine: true, ...(d.sha256 ? { sha256: d.sha256 } : {}), bytes: d.bytes, ...(d.md5 ? { md5: d.md5 } : {}) };
  } finally {
    await opened.dispose();
  }
}

/** Takes back copies this run published when it fails later (unless someone else holds them meanwhile). */
export async function rollback(client: VimClient, dc: Datacenter, published: string[], cachePrefix: string, imageId: string, kind: CachedKind): Promise<void> {
  await Promise.all(
    published.map(async (ds) => {
      try {
        if ((await holdersOf(client, dc, cacheLocation(ds, cachePrefix, imageId, kind).folder)).length === 0) await removeCachedImage(client, dc, ds, cachePrefix, imageId);
      } catch (err) {
        client.log({ level: "warn", event: "cleanup", message: `could not remove image ${imageId} from ${ds} after a failure: ${(err as Error).message}` });
      }
    }),
  );
}

/** A cache folder's files, or undefined when the folder is gone. */
async function filesIn(client: VimClient, dc: Datacenter, folder: DatastorePath): Promise<FileEntry[] | undefined> {
  return (await listFolderIfExists(client, dc, folder))?.filter((f) => !f.folder);
}

/** The VMs (and VMs whose disks cannot be read) using any disk in each folder, by datastore. */
async function usersOf(client: VimClient, folders: Array<{ ds: string; files: FileEntry[] }>): Promise<Map<string, string[]>> {
  const disks = new Map<string, string>();
  for (const { ds, files } of folders) for (const f of files) if (f.name.endsWith(".vmdk")) disks.set(f.path.toString(), ds);
  const out = new Map<string, string[]>();
  if (disks.size === 0) return out;
  const usage = await diskUsage(client, [...disks.keys()]);
  for (const [path, users] of usage.users) {
    if (users.length === 0) continue;
    const ds = disks.get(path)!;
    out.set(ds, [...new Set([...(out.get(ds) ?? []), ...users.map((u) => u.name)])]);
  }
  if (usage.unreadable.length) {
    // A VM whose disks cannot be read may use any of them: keep every copy.
    const names = usage.unreadable.map((u) => `${u.name} (disks unreadable)`);
    for (const { ds } of folders) out.set(ds, [...new Set([...(out.get(ds) ?? []), ...names])]);
  }
  return out;
}

const warn = (message: string) => process.stderr.write(`warning: ${message}\n`);

/**
 * Lets go of the copies on `datastores`: each is removed unless another holder keeps it
 * or a VM's disk chain uses it. In use: an error naming the VMs (nothing changed), or
 * with `retain`, the copy is left for the cache policy and a warning says so.
 */
export async function release(client: VimClient, dc: Datacenter, s: CacheEntry, datastores: string[], retain: boolean): Promise<void> {
  // One listing per folder says both who else holds the copy and which disks to ask about.
  const folders = await Promise.all(
    datastores.map(async (ds) => {
      const folder = cacheLocation(ds, s.cachePrefix, s.imageId, s.kind).folder;
      const files = await filesIn(client, dc, folder);
      return { ds, folder, files: files ?? [], gone: files === undefined, others: holdersIn((files ?? []).map((f) => f.name)).filter((h) => h !== s.holder) };
    }),
  );
  const sole = folders.filter((f) => !f.gone && f.others.length === 0);
  const users = await usersOf(client, sole);
  if (users.size && !retain) {
    const list = [...users].map(([ds, vms]) => `${ds}: ${vms.slice(0, 5).join(", ")}${vms.length > 5 ? ", ..." : ""}`).join("; ");
    throw new ImageInUseError(
      `image ${s.imageId} is still used by VMs (${list}): delete or move those VMs first, or set retainWhileInUse: true to leave the used copies to the image cache policy`,
    );
  }
  await Promise.all(
    folders.map(async (f) => {
      if (f.gone) return;
      if (sole.includes(f) && !users.has(f.ds)) {
        await removeCachedImage(client, dc, f.ds, s.cachePrefix, s.imageId); // the marker goes with the folder
        return;
      }
      await removeHolder(client, dc, f.folder, s.holder);
      if (users.has(f.ds)) warn(`image ${s.imageId} on ${f.ds} is used by ${users.get(f.ds)!.join(", ")}: left in the cache for the image cache policy (retainWhileInUse)`);
    }),
  );
}

/** A delete refused because VMs use the image. */
export class ImageInUseError extends VSphereError {
  readonly code = "ImageInUse";
}

