// Publishing an image's bytes into a datastore's image cache, each disk type the way
// vCenter needs it (Nova's vmops/images), staged under `vmware_temp/<uuid>/<imageId>/`
// and moved into the cache in one step (image-cache.ts publishStaged):
//
//   sparse          PUT tmp-sparse.vmdk beside the <imageId> folder, CopyVirtualDisk_Task
//                   to <id>.vmdk in it (vCenter makes it a flat disk ESXi can run); the
//                   sparse file goes with the staging root, no delete task of its own
//   thin/prealloc.  CreateVirtualDisk_Task makes <id>.vmdk (descriptor + -flat) of the
//                   capacity, adapter and type; its -flat is deleted and the image's flat
//                   bytes PUT in its place
//   streamOptimized ImportVApp + NFC lease (nfc-import.ts), UnregisterVM of the shadow VM,
//   (and OVA)       MoveVirtualDisk_Task of its disk into staging, delete its folder
//   ISO             PUT <id>.iso
//
// Flat disks get vCenter's descriptor, not one we write: CreateVirtualDisk_Task writes
// what this ESXi version reads (geometry, CID, uuid, hardware version) and a qemu-img
// or twoGbMaxExtentFlat descriptor would carry its own extent layout; one extra task
// is cheap next to the upload.
import type { Readable } from "node:stream";
import type { VimClient } from "./client.js";
import type { Checksum } from "./checksum.js";
import { copyVirtualDisk, DatastorePath, deleteFile, flatExtentOf, makeDirectory, moveVirtualDisk, statFile } from "./datastore.js";
import { NotFoundError } from "./errors.js";
import { ChecksumMismatchError } from "./image-errors.js";
import type { ImageInfo } from "./image-format.js";
import { cacheLocation, dropStaging, imageIdSchema, publishStaged, stagingFor, type CachedKind } from "./image-cache.js";
import type { Datacenter } from "./inventory.js";
import { importStreamOptimized } from "./nfc-import.js";
import { runTask } from "./task.js";
import { upload, type ChecksumAlgorithm, type StreamResult } from "./transfer.js";
import type { AdapterType, DiskType } from "./vmdk.js";
import type { MoRef } from "./soap/xml.js";

/** The bytes to publish and what they are. `stream` is read once, or destroyed unread on a cache hit or an early failure. */
export type PublishSource = { stream: Readable; length: number; name?: string } & (
  | { kind: "sparse"; adapterType: AdapterType; capacityBytes: number }
  /** `stream` is the disk's flat bytes (its extents in order), not the descriptor. */
  | { kind: "flat"; diskType: "thin" | "preallocated"; adapterType: AdapterType; capacityBytes: number }
  | { kind: "streamOptimized"; adapterType: AdapterType; capacityBytes: number }
  | { kind: "iso" }
);

/**
 * The publish source for a sniffed image. A descriptor's bytes are not the disk: give
 * `flat` (flatExtentsStream of its extents and their total length); the descriptor's
 * stream is then destroyed here. `adapterType` overrides the file's (an OVA's controller).
 */
export function publishSourceOf(
  sniffed: { info: ImageInfo; stream: Readable },
  opts: { name?: string; adapterType?: AdapterType; flat?: { stream: Readable; length: number } } = {},
): PublishSource {
  const { info } = sniffed;
  const name = opts.name !== undefined ? { name: opts.name } : {};
  const need = (n: number | undefined): number => {
    if (n === undefined) throw new TypeError(`publishSourceOf: the size of ${opts.name ?? "the image"} must be known`);
    return n;
  };
  switch (info.format) {
    case "vmdk": {
      const base = { ...name, stream: sniffed.stream, length: need(info.size), adapterType: opts.adapterType ?? info.vmdk.adapterType, capacityBytes: info.vmdk.capacityBytes };
      if (info.vmdk.diskType === "streamOptimized") return { kind: "streamOptimized", ...base };
      return { kind: "sparse", ...base };
    }
    case "vmdkDescriptor": {
      if (!opts.flat) throw new TypeError("publishSourceOf: a VMDK descriptor needs its flat extents (opts.flat)");
      sniffed.stream.destroy();
      const diskType = info.vmdk.diskType === "thin" ? "thin" : "preallocated";
      return { kind: "flat", ...name, diskType, stream: opts.flat.stream, length: opts.flat.length, adapterType: opts.adapterType ?? info.vmdk.adapterType, capacityBytes: info.vmdk.capacityBytes };
    }
    case "iso":
      return { kind: "iso", ...name, stream: sniffed.stream, length: need(info.size) };
    default:
      throw new TypeError(`publishSourceOf: a ${info.format} image is converted to a VMDK before it is published`);
  }
}

/** The NFC import, as publishImage calls it (nfc-import.ts; replaceable in tests). */
export type ImportStreamOptimized = typeof importStreamOptimized;

export interface PublishOptions {
  datacenter: Datacenter;
  datastore: string;
  cachePrefix: string;
  /** The cache folder's name; the caller derives a stable one from the content (e.g. sha256's first 32 hex). */
  imageId: string;
  source: PublishSource;
  /**
   * false: the caller hashed these bytes already (and made sure they are the ones it
   * hashed), so the upload does not pay for sha256 again; `checksums` and `expected`
   * still ask for theirs. Default true.
   */
  hash?: boolean;
  /** Digests to compute on the way (sha256 always, unless hash: false). */
  checksums?: ChecksumAlgorithm[];
  /** The declared checksum: a mismatch publishes nothing. */
  expected?: Checksum;
  /** For streamOptimized: the resource pool (and VM folder) of the shadow VM. */
  resourcePool?: MoRef;
  vmFolder?: MoRef;
  onProgress?: (sent: number, total: number) => void;
  /**
   * The caller has just looked and the image is not cached there: skip that look (one
   * search task). A writer that gets there meanwhile still wins by the move's rule.
   */
  knownAbsent?: boolean;
  /** Replaces the NFC import (tests; default nfc-import.ts). */
  importStreamOptimized?: ImportStreamOptimized;
}

export interface PublishResult {
  paths: { disk: DatastorePath; folder: DatastorePath };
  /** Bytes read from the source and sent (0 on a cache hit: nothing was read). */
  bytes: number;
  /** Of the bytes sent; undefined on a cache hit. */
  sha256: string | undefined;
  md5?: string;
  capacityBytes: number | undefined;
  diskType: DiskType | undefined;
  adapterType: AdapterType | undefined;
  /** The image was in the cache already, or another writer's copy won the publish. */
  alreadyCached: boolean;
}

const cachedKind = (s: PublishSource): CachedKind => (s.kind === "iso" ? "iso" : "disk");

/** What the cached disk is: sparse and streamOptimized sources become flat disks. */
function resultType(s: PublishSource): Pick<PublishResult, "capacityBytes" | "diskType" | "adapterType"> {
  if (s.kind === "iso") return { capacityBytes: undefined, diskType: undefined, adapterType: undefined };
  return { capacityBytes: s.capacityBytes, diskType: s.kind === "flat" ? s.diskType : s.kind, adapterType: s.adapterType };
}

// Publishes of one image to one datastore in flight on a client: a second waits for the
// first, then finds the image cached (or, when the first failed, publishes its own bytes).
const inFlight = new WeakMap<VimClient, Map<string, Promise<unknown>>>();

/**
 * Puts an image into the datastore's cache: nothing is read when it is there already;
 * otherwise it is staged, checked against `expected`, and published atomically. The
 * staging folder is deleted on every path. Callers on one client publishing the same
 * image take turns (one upload); other processes race safely (the first move wins).
 */
export function publishImage(client: VimClient, opts: PublishOptions): Promise<PublishResult> {
  let perClient = inFlight.get(client);
  if (!perClient) inFlight.set(client, (perClient = new Map()));
  const map = perClient;
  const key = JSON.stringify([opts.datacenter.ref.toString(), opts.datastore, opts.cachePrefix, opts.imageId]);
  const before = map.get(key);
  const mine: Promise<PublishResult> = (async () => {
    if (before) await before.catch(() => undefined);
    return publishOnce(client, opts);
  })();
  const settled = mine.catch(() => undefined).finally(() => {
    if (map.get(key) === settled) map.delete(key);
  });
  map.set(key, settled);
  return mine;
}

async function publishOnce(client: VimClient, opts: PublishOptions): Promise<PublishResult> {
  const { datacenter: dc, source } = opts;
  try {
    const id = imageIdSchema.parse(opts.imageId);
    checkSource(source, id);
    const kind = cachedKind(source);
    const location = cacheLocation(opts.datastore, opts.cachePrefix, id, kind);
    const paths = { disk: location.disk, folder: location.folder };
    const checksums = [...new Set<ChecksumAlgorithm>([...(opts.hash === false ? [] : ["sha256" as const]), ...(opts.checksums ?? []), ...(opts.expected ? [opts.expected.algorithm] : [])])];
    if (!opts.knownAbsent && (await statFile(client, dc, location.disk, { details: false }))) {
      return { paths, bytes: 0, sha256: undefined, ...resultType(source), alreadyCached: true };
    }
    const staging = stagingFor(opts.datastore, id);
    try {
      await makeDirectory(client, dc, staging.folder);
      const sent = await stage(client, opts, staging.folder, id, checksums);
      const { alreadyCached } = await publishStaged(client, dc, staging.folder, location, kind);
      return { paths, bytes: sent.bytes, sha256: sent.sha256, ...(sent.md5 ? { md5: sent.md5 } : {}), ...resultType(source), alreadyCached };
    } finally {
      await dropStaging(client, dc, staging.root);
    }
  } finally {
    // Unread on a hit or an early failure; read to the end otherwise (destroy is then a no-op).
    source.stream.destroy();
  }
}

/** What can be refused before a round trip. */
function checkSource(source: PublishSource, id: string): void {
  const name = source.name ?? `image ${id}`;
  if (!Number.isSafeInteger(source.length) || source.length <= 0) throw new TypeError(`${name}: the length must be a positive whole number of bytes, got ${source.length}`);
  if (source.kind !== "flat") return;
  if (source.capacityBytes % 1024 !== 0 || source.capacityBytes <= 0) {
    throw new TypeError(`${name}: a flat disk of ${source.capacityBytes} bytes is not whole KiB; vCenter sizes disks in KiB`);
  }
  if (source.length !== source.capacityBytes) throw new TypeError(`${name}: the flat bytes (${source.length}) are not the disk's capacity (${source.capacityBytes})`);
}

function verify(opts: PublishOptions, sent: StreamResult): void {
  const e = opts.expected;
  if (!e) return;
  const actual = sent[e.algorithm];
  if (actual !== e.hex) throw new ChecksumMismatchError(opts.source.name ?? `image ${opts.imageId}`, e.algorithm, e.hex, actual ?? "(not computed)");
}

/** Writes the image into the staging folder as `<id>.vmdk` (a flat disk) or `<id>.iso`; resolves what was sent. */
async function stage(client: VimClient, opts: PublishOptions, folder: DatastorePath, id: string, checksums: ChecksumAlgorithm[]): Promise<StreamResult> {
  const { datacenter: dc, source } = opts;
  const put = async (file: DatastorePath): Promise<StreamResult> => {
    const sent = await upload(client, dc, file, source.stream, { length: source.length, checksums, ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) });
    verify(opts, sent);
    return sent;
  };
  const disk = folder.join(`${id}.vmdk`);
  switch (source.kind) {
    case "iso":
      return put(folder.join(`${id}.iso`));
    case "sparse": {
      // In the staging root, outside the folder that is published: deleting the root
      // afterwards (dropStaging, on every path) takes it, so it costs no task of its own.
      const tmp = folder.parent.join("tmp-sparse.vmdk");
      const sent = await put(tmp);
      // No destSpec: vCenter does not implement it (ESXi only). vCenter writes a preallocated
      // disk whose descriptor says busLogic, as for Nova; the VM's controller follows the
      // image's adapterType, which the result records.
      await copyVirtualDisk(client, dc, tmp, disk);
      return sent;
    }
    case "flat": {
      const vdm = client.serviceContent.virtualDiskManager;
      if (!vdm) throw new NotFoundError(`${client.endpoint} has no VirtualDiskManager`, "object");
      await runTask(
        client,
        "CreateVirtualDisk_Task",
        vdm,
        {
          name: disk.toString(),
          datacenter: dc.ref,
          spec: { $type: "FileBackedVirtualDiskSpec", diskType: source.diskType, adapterType: vimAdapter(source.adapterType), capacityKb: source.capacityBytes / 1024 },
        },
        // The staging folder is this call's alone: a descriptor there after a lost answer is the one it made.
        { checkApplied: async () => ((await statFile(client, dc, disk, { details: false })) ? { applied: true } : { applied: false }) },
      );
      const flat = flatExtentOf(disk);
      await deleteFile(client, dc, flat, { mustExist: true });
      return put(flat);
    }
    case "streamOptimized":
      return importDisk(client, opts, source, disk, checksums);
  }
}

/** VirtualDiskAdapterType knows ide, busLogic and lsiLogic; the SAS and paravirtual controllers take an lsiLogic disk (as Nova). */
function vimAdapter(a: AdapterType): "ide" | "busLogic" | "lsiLogic" {
  return a === "ide" || a === "busLogic" ? a : "lsiLogic";
}

/**
 * ImportVApp of a shadow VM whose disk is the image (nfc-import.ts), then, as Nova:
 * unregister it, move its disk into staging, delete its folder. The lease's upload is
 * hashed on the way, so a mismatch is known before anything moves.
 */
async function importDisk(
  client: VimClient,
  opts: PublishOptions,
  source: Extract<PublishSource, { kind: "streamOptimized" }>,
  disk: DatastorePath,
  checksums: ChecksumAlgorithm[],
): Promise<StreamResult> {
  if (!opts.resourcePool) throw new TypeError("publishImage: a streamOptimized image is imported through a shadow VM: give resourcePool");
  const importer = opts.importStreamOptimized ?? importStreamOptimized;
  const imported = await importer(client, {
    datacenter: opts.datacenter,
    resourcePool: opts.resourcePool,
    ...(opts.vmFolder ? { folder: opts.vmFolder } : {}),
    datastore: opts.datastore,
    // The staging uuid's first 8 hex make the shadow VM's name (and folder) unique per writer.
    // VM names are at most 80 characters.
    name: `image-${opts.imageId.slice(0, 48)}-${disk.parent.parent.basename.slice(0, 8)}`,
    capacityBytes: source.capacityBytes,
    adapterType: source.adapterType,
    stream: source.stream,
    length: source.length,
    checksums,
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
  let unregistered = false;
  try {
    verify(opts, imported.transfer);
    await imported.release();
    unregistered = true;
    await moveVirtualDisk(client, opts.datacenter, imported.disk, disk);
    return imported.transfer;
  } finally {
    // A shadow VM or folder left behind is logged, never thrown over the image's outcome.
    const cleanup = unregistered ? deleteFile(client, opts.datacenter, imported.vmFolder) : imported.release({ deleteFolder: true });
    await cleanup.catch((err: unknown) => {
      client.log({ level: "warn", event: "cleanup", message: `could not remove the import's shadow VM files ${imported.vmFolder}: ${(err as Error).message}` });
    });
  }
}
