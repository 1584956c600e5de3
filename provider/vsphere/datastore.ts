// Datastore paths ("[ds] folder/file.vmdk"), browsing (HostDatastoreBrowser) and file
// operations (FileManager, VirtualDiskManager), as Nova's ds_util.
//
// Replay safety: every call that changes the datastore passes a checkApplied that
// looks at the datastore after a lost answer (does the folder exist now? is the
// source gone and the destination there?), so a broken connection ends in a known
// outcome whenever the datastore can tell; when it cannot (a copy whose destination
// exists may be partial), the error is OutcomeUnknownError and says what to check.
import { z } from "zod";
import type { CallOptions, VimClient } from "./client.js";
import { FileAlreadyExistsFault, FileNotFoundFault, InvalidDatastorePathError, NotFoundError, OutcomeUnknownError } from "./errors.js";
import type { Datacenter } from "./inventory.js";
import { traversal } from "./inventory-cache.js";
import { PropertyCollector } from "./property.js";
import { arrayOf, dataObject, dateTime, long, moRef, str } from "./schema.js";
import type { MoRef, VimValue } from "./soap/xml.js";
import type { MethodArgs } from "./soap/envelope.js";
import { runTask, runTasksTogether, type TaskWaitOptions } from "./task.js";

/**
 * A path in a datastore: `[datastore] folder/file.vmdk`. The datastore name ends at
 * the first "] " (or at a final "]": the datastore's root), as vSphere and Nova read
 * it, so names with spaces and brackets ("[ds [1]] a b/c") round-trip.
 */
export class DatastorePath {
  /** Folder and file names below the datastore's root, "/"-separated, no leading "/". */
  readonly path: string;

  constructor(
    readonly datastore: string,
    path = "",
  ) {
    if (datastore === "") throw new InvalidDatastorePathError(`[${datastore}] ${path}`, "the datastore name is empty");
    this.path = normalize(path);
  }

  /** Reads `[ds] a/b`; throws InvalidDatastorePathError on anything else. */
  static parse(text: string): DatastorePath {
    if (!text.startsWith("[")) throw new InvalidDatastorePathError(text, 'it does not start with "[datastore]"');
    const sep = text.indexOf("] ", 1);
    if (sep > 1) return new DatastorePath(text.slice(1, sep), text.slice(sep + 2));
    if (text.endsWith("]") && text.length > 2) return new DatastorePath(text.slice(1, -1));
    throw new InvalidDatastorePathError(text, 'the datastore name is not closed by "] "');
  }

  toString(): string {
    return this.path === "" ? `[${this.datastore}]` : `[${this.datastore}] ${this.path}`;
  }

  /** Names below this path: `join("a", "b/c.vmdk")`. */
  join(...parts: string[]): DatastorePath {
    return new DatastorePath(this.datastore, [this.path, ...parts].join("/"));
  }

  /** The folder this file or folder is in (the datastore's root stays the root). */
  get parent(): DatastorePath {
    const i = this.path.lastIndexOf("/");
    return new DatastorePath(this.datastore, i < 0 ? "" : this.path.slice(0, i));
  }

  /** The last name ("" for the datastore's root). */
  get basename(): string {
    return this.path.slice(this.path.lastIndexOf("/") + 1);
  }

  equals(other: DatastorePath): boolean {
    return other.datastore === this.datastore && other.path === this.path;
  }
}

function normalize(path: string): string {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw new InvalidDatastorePathError(path, '".." is not allowed in a datastore path');
  return parts.join("/");
}

/** Accepts a DatastorePath or its text. */
export type PathLike = DatastorePath | string;
const asPath = (p: PathLike): DatastorePath => (typeof p === "string" ? DatastorePath.parse(p) : p);

function fileManager(client: VimClient): MoRef {
  const fm = client.serviceContent.fileManager;
  if (!fm) throw new NotFoundError(`${client.endpoint} has no FileManager`, "object");
  return fm;
}

function diskManager(client: VimClient): MoRef {
  const vdm = client.serviceContent.virtualDiskManager;
  if (!vdm) throw new NotFoundError(`${client.endpoint} has no VirtualDiskManager`, "object");
  return vdm;
}

// ---------------------------------------------------------------------------
// Datastores of a datacenter by name, with their browsers (kept per client).

/** A datastore as file operations need it. */
export interface DatastoreHandle {
  ref: MoRef;
  name: string;
  browser: MoRef;
}

const HandleProps = z.object({ name: str, browser: moRef });
const handles = new WeakMap<VimClient, Map<string, Promise<Map<string, DatastoreHandle>>>>();

async function readHandles(client: VimClient, datacenter: Datacenter): Promise<Map<string, DatastoreHandle>> {
  // One traversal of the datastore folder (nested folders and storage pods included).
  const contents = await new PropertyCollector(client).retrieve([
    {
      propSet: [{ type: "Datastore", pathSet: ["name", "browser"] }],
      objectSet: [{ obj: datacenter.datastoreFolder, skip: true, selectSet: [traversal("folderChildren", "Folder", "childEntity", ["folderChildren"])] }],
    },
  ]);
  const out = new Map<string, DatastoreHandle>();
  for (const c of contents) {
    if (c.obj.type !== "Datastore") continue;
    const p = HandleProps.parse(c.props);
    out.set(p.name, { ref: c.obj, name: p.name, browser: p.browser });
  }
  return out;
}

/**
 * Datastores another read found (a datastore choice reads the browser with the free
 * space; a datacenter look-up can read them all): findDatastore answers them without a
 * read of its own. A name not among them still reads the datacenter's datastores, unless
 * `complete` says these are all of them (as findDatastore's own read).
 */
export function noteDatastores(client: VimClient, datacenter: Datacenter, found: DatastoreHandle[], complete = false): void {
  let perClient = handles.get(client);
  if (!perClient) handles.set(client, (perClient = new Map()));
  const key = datacenter.ref.toString();
  const entry = perClient.get(key);
  if (entry && !complete) void entry.then((all) => found.forEach((h) => all.set(h.name, h))).catch(() => {});
  else perClient.set(key, Promise.resolve(new Map(found.map((h) => [h.name, h]))));
}

/**
 * The datastore of that name in the datacenter: read once per client, and again
 * when the name is not in what was read (a datastore added since), or with `fresh`.
 */
export async function findDatastore(client: VimClient, datacenter: Datacenter, name: string, opts: { fresh?: boolean } = {}): Promise<DatastoreHandle> {
  let perClient = handles.get(client);
  if (!perClient) handles.set(client, (perClient = new Map()));
  const cache = perClient;
  const key = datacenter.ref.toString();
  const read = () => {
    const entry = readHandles(client, datacenter);
    cache.set(key, entry);
    entry.catch(() => cache.delete(key));
    return entry;
  };
  const cached = opts.fresh ? undefined : cache.get(key);
  let all = await (cached ?? read());
  if (!all.has(name) && cached) all = await read();
  const found = all.get(name);
  if (found) return found;
  const names = [...all.keys()].join(", ") || "none";
  throw new NotFoundError(`datastore "${name}" not found in datacenter ${datacenter.name} (there are: ${names})`, "datastore", name);
}

// ---------------------------------------------------------------------------
// Browsing

/** A file or folder a search found. */
export interface FileEntry {
  name: string;
  path: DatastorePath;
  folder: boolean;
  /** Bytes (with `details`). */
  size: number | undefined;
  /** Last modification (with `details`). */
  modified: Date | undefined;
}

const SearchResults = dataObject({
  folderPath: str.optional(),
  file: arrayOf(
    z.looseObject({
      $type: str.optional(),
      path: str,
      fileSize: long.optional(),
      modification: dateTime.optional(),
    }),
  ),
});

export interface ListOptions {
  /** Shell patterns the names must match (`*.vmdk`); default every name. */
  matchPattern?: string[];
  /** Read each entry's size and modification time. */
  details?: boolean;
}

/** A search of one folder: its entries, or with `recursive` every folder below it too. */
export interface SearchRequest extends ListOptions {
  folder: PathLike;
  /** Every folder below too, in one SearchDatastoreSubFolders_Task. */
  recursive?: boolean;
}

/** Folder ("[ds] a/b") → its entries. */
export type SearchTree = Map<string, FileEntry[]>;

const TreeResults = arrayOf(SearchResults);

function searchCall(dir: DatastorePath, r: SearchRequest): { method: "SearchDatastore_Task" | "SearchDatastoreSubFolders_Task"; args: MethodArgs } {
  const details = r.details ?? false;
  return {
    method: r.recursive ? "SearchDatastoreSubFolders_Task" : "SearchDatastore_Task",
    args: {
      datastorePath: dir.toString(),
      searchSpec: {
        // FolderFileQuery first, so folders come back typed as folders; FileQuery for the rest.
        query: [{ $type: "FolderFileQuery" }, { $type: "FileQuery" }],
        details: { fileType: true, fileSize: details, modification: details, fileOwner: false },
        // vCenter lists every name without a pattern; the simulator lists none: always send one.
        matchPattern: r.matchPattern ?? ["*"],
      },
    },
  };
}

function entriesOf(dir: DatastorePath, res: z.infer<typeof SearchResults>): FileEntry[] {
  return res.file.map((f) => ({
    name: f.path,
    path: dir.join(f.path),
    folder: f.$type === "FolderFileInfo",
    size: f.fileSize,
    modified: f.modification,
  }));
}

function treeOf(dir: DatastorePath, recursive: boolean, raw: VimValue | undefined): SearchTree {
  const out: SearchTree = new Map();
  if (!recursive) {
    out.set(dir.toString(), entriesOf(dir, SearchResults.parse(raw ?? {})));
    return out;
  }
  for (const r of TreeResults.parse(raw ?? [])) {
    if (r.folderPath === undefined) continue;
    const folder = DatastorePath.parse(r.folderPath);
    out.set(folder.toString(), entriesOf(folder, r));
  }
  return out;
}

/**
 * Several searches at once (any datastores): every search task is started together and
 * ONE round trip reads all their outcomes (waitForTasks), instead of a call and a poll
 * each. Each search is settled on its own: a folder that does not exist is its
 * FileNotFoundFault, the others still answer.
 */
export async function searchMany(client: VimClient, datacenter: Datacenter, requests: SearchRequest[]): Promise<Array<PromiseSettledResult<SearchTree>>> {
  const dirs = requests.map((r) => asPath(r.folder));
  const outcomes = await runTasksTogether(
    client,
    requests.map((r, i) => async () => {
      const ds = await findDatastore(client, datacenter, dirs[i]!.datastore);
      const { method, args } = searchCall(dirs[i]!, r);
      return moRef.parse(await client.invoke(method, ds.browser, args));
    }),
  );
  return outcomes.map((o, i) => (o.status === "rejected" ? o : { status: "fulfilled", value: treeOf(dirs[i]!, requests[i]!.recursive ?? false, o.value) }));
}

/** A search's outcome (searchMany's) with a folder that does not exist read as empty; other failures throw. */
export function treeOrEmpty(r: PromiseSettledResult<SearchTree>): SearchTree {
  if (r.status === "fulfilled") return r.value;
  if (r.reason instanceof FileNotFoundFault) return new Map();
  throw r.reason;
}

/**
 * The entries of a folder (not recursive), through SearchDatastore_Task. A folder
 * that does not exist is FileNotFoundFault.
 */
export async function listFolder(client: VimClient, datacenter: Datacenter, folder: PathLike, opts: ListOptions = {}): Promise<FileEntry[]> {
  const dir = asPath(folder);
  return (await searchTree(client, datacenter, { ...opts, folder: dir })).get(dir.toString()) ?? [];
}

/**
 * One search (searchMany's single form, with runTask's first look): the folder's
 * entries, or with `recursive` every folder below it too. FileNotFoundFault when the
 * folder does not exist.
 */
export async function searchTree(client: VimClient, datacenter: Datacenter, request: SearchRequest): Promise<SearchTree> {
  const dir = asPath(request.folder);
  const ds = await findDatastore(client, datacenter, dir.datastore);
  const { method, args } = searchCall(dir, request);
  return treeOf(dir, request.recursive ?? false, await runTask(client, method, ds.browser, args));
}

/** listFolder, or undefined when the folder does not exist (a cache folder deleted meanwhile). */
export async function listFolderIfExists(client: VimClient, datacenter: Datacenter, folder: PathLike, opts: ListOptions = {}): Promise<FileEntry[] | undefined> {
  try {
    return await listFolder(client, datacenter, folder, opts);
  } catch (err) {
    if (err instanceof FileNotFoundFault) return undefined;
    throw err;
  }
}

/**
 * The file or folder's entry, or undefined when it (or its folder) does not exist:
 * a search of its parent folder with its name as the pattern, as Nova's cache-hit test.
 */
export async function statFile(client: VimClient, datacenter: Datacenter, file: PathLike, opts: { details?: boolean } = {}): Promise<FileEntry | undefined> {
  const p = asPath(file);
  if (p.path === "") return { name: "", path: p, folder: true, size: undefined, modified: undefined };
  try {
    // Brackets and other glob characters in the name would be read as a pattern: match
    // by a pattern that escapes nothing but compare the names exactly.
    const pattern = /[*?[\]]/.test(p.basename) ? ["*"] : [p.basename];
    const entries = await listFolder(client, datacenter, p.parent, { matchPattern: pattern, details: opts.details ?? true });
    return entries.find((e) => e.name === p.basename);
  } catch (err) {
    if (err instanceof FileNotFoundFault) return undefined;
    throw err;
  }
}

/** Whether the file or folder exists. */
export async function fileExists(client: VimClient, datacenter: Datacenter, file: PathLike): Promise<boolean> {
  return (await statFile(client, datacenter, file, { details: false })) !== undefined;
}

// ---------------------------------------------------------------------------
// Changes

type Check = NonNullable<CallOptions["checkApplied"]>;
type Options = TaskWaitOptions;

/**
 * Makes a folder (and its parents, by default). A folder that exists already is
 * fine (vCenter says FileAlreadyExists, the simulator nothing: both end here).
 */
export async function makeDirectory(
  client: VimClient,
  datacenter: Datacenter,
  folder: PathLike,
  opts: { createParents?: boolean } = {},
): Promise<void> {
  const dir = asPath(folder);
  try {
    await client.invoke(
      "MakeDirectory",
      fileManager(client),
      { name: dir.toString(), datacenter: datacenter.ref, createParentDirectories: opts.createParents ?? true },
      { checkApplied: async () => ((await fileExists(client, datacenter, dir)) ? { applied: true } : { applied: false }) },
    );
  } catch (err) {
    if (!(err instanceof FileAlreadyExistsFault)) throw err;
  }
}

/**
 * Deletes a file or a folder with everything in it (DeleteDatastoreFile_Task).
 * Resolves false when there was nothing to delete (unless `mustExist`).
 */
export async function deleteFile(client: VimClient, datacenter: Datacenter, file: PathLike, opts: Options & { mustExist?: boolean } = {}): Promise<boolean> {
  const p = asPath(file);
  const checkApplied: Check = async () => ((await fileExists(client, datacenter, p)) ? { applied: false } : { applied: true });
  try {
    await runTask(client, "DeleteDatastoreFile_Task", fileManager(client), { name: p.toString(), datacenter: datacenter.ref }, { ...opts, checkApplied });
    return true;
  } catch (err) {
    if (err instanceof FileNotFoundFault && !opts.mustExist) return false;
    throw err;
  }
}

/**
 * deleteFile for several files or folders at once: every DeleteDatastoreFile_Task is
 * started together and ONE round trip reads all their outcomes (waitForTasks). Each is
 * settled on its own: true when deleted, false when it was not there; a lost answer is
 * resolved as deleteFile resolves it.
 */
export async function deleteMany(client: VimClient, datacenter: Datacenter, files: PathLike[], opts: Options = {}): Promise<Array<PromiseSettledResult<boolean>>> {
  const outcomes = await runTasksTogether(
    client,
    files.map(asPath).map((p) => async () => {
      const checkApplied: Check = async () => ((await fileExists(client, datacenter, p)) ? { applied: false } : { applied: true });
      const { value, recovered } = await client.call("DeleteDatastoreFile_Task", fileManager(client), { name: p.toString(), datacenter: datacenter.ref }, { ...opts, checkApplied });
      return recovered ? { value } : moRef.parse(value);
    }),
    opts,
  );
  return outcomes.map((o): PromiseSettledResult<boolean> => {
    if (o.status === "fulfilled") return { status: "fulfilled", value: true };
    if (o.reason instanceof FileNotFoundFault) return { status: "fulfilled", value: false };
    return o;
  });
}

/**
 * After a lost answer to a move: done when the source is gone and the destination
 * there, not done when the source is there and the destination not; anything else
 * cannot be told from the datastore.
 */
function moveCheck(client: VimClient, datacenter: Datacenter, method: string, src: DatastorePath, dst: DatastorePath): Check {
  return async () => {
    const [srcThere, dstThere] = await Promise.all([fileExists(client, datacenter, src), fileExists(client, datacenter, dst)]);
    if (!srcThere && dstThere) return { applied: true };
    if (srcThere && !dstThere) return { applied: false };
    throw new OutcomeUnknownError(
      client.endpoint,
      method,
      new Error(`after the lost answer ${src} ${srcThere ? "exists" : "is missing"} and ${dst} ${dstThere ? "exists" : "is missing"}: check both`),
    );
  };
}

/**
 * After a lost answer to a copy (never with force): not done when the destination
 * is missing (replaying is safe: a copy already running would make the replay fail
 * with FileAlreadyExists, never overwrite); a destination that exists may be a copy
 * in progress or a partial one, which the datastore cannot tell.
 */
function copyCheck(client: VimClient, datacenter: Datacenter, method: string, dst: DatastorePath): Check {
  return async () => {
    if (!(await fileExists(client, datacenter, dst))) return { applied: false };
    throw new OutcomeUnknownError(
      client.endpoint,
      method,
      new Error(`after the lost answer ${dst} exists but may be incomplete: delete it and copy again`),
    );
  };
}

/** Moves (renames) a file or folder; an existing destination is FileAlreadyExists unless `force`. */
export async function moveFile(client: VimClient, datacenter: Datacenter, source: PathLike, destination: PathLike, opts: Options & { force?: boolean } = {}): Promise<void> {
  const src = asPath(source);
  const dst = asPath(destination);
  await runTask(
    client,
    "MoveDatastoreFile_Task",
    fileManager(client),
    { sourceName: src.toString(), sourceDatacenter: datacenter.ref, destinationName: dst.toString(), destinationDatacenter: datacenter.ref, force: opts.force ?? false },
    { ...opts, checkApplied: moveCheck(client, datacenter, "MoveDatastoreFile_Task", src, dst) },
  );
}

/** Copies a file or folder byte for byte; an existing destination is FileAlreadyExists. */
export async function copyFile(client: VimClient, datacenter: Datacenter, source: PathLike, destination: PathLike, opts: Options = {}): Promise<void> {
  const src = asPath(source);
  const dst = asPath(destination);
  await runTask(
    client,
    "CopyDatastoreFile_Task",
    fileManager(client),
    { sourceName: src.toString(), sourceDatacenter: datacenter.ref, destinationName: dst.toString(), destinationDatacenter: datacenter.ref, force: false },
    { ...opts, checkApplied: copyCheck(client, datacenter, "CopyDatastoreFile_Task", dst) },
  );
}

/** `a.vmdk` -> `a-flat.vmdk`: the extent a flat disk's descriptor names. */
export function flatExtentOf(disk: DatastorePath): DatastorePath {
  return disk.parent.join(disk.basename.replace(/\.vmdk$/i, "") + "-flat.vmdk");
}

/**
 * Copies a virtual disk (descriptor and extents); vCenter turns a sparse or
 * streamOptimized source into a disk its hosts can run (Nova's sparse upload path).
 * `destSpec` is a VirtualDiskSpec (diskType, adapterType) for an ESXi-side convert.
 */
export async function copyVirtualDisk(
  client: VimClient,
  datacenter: Datacenter,
  source: PathLike,
  destination: PathLike,
  opts: Options & { destSpec?: Record<string, VimValue | undefined> } = {},
): Promise<void> {
  const src = asPath(source);
  const dst = asPath(destination);
  await runTask(
    client,
    "CopyVirtualDisk_Task",
    diskManager(client),
    { sourceName: src.toString(), sourceDatacenter: datacenter.ref, destName: dst.toString(), destDatacenter: datacenter.ref, destSpec: opts.destSpec, force: false },
    { ...opts, checkApplied: copyCheck(client, datacenter, "CopyVirtualDisk_Task", dst) },
  );
}

/** Moves a virtual disk (descriptor and extents together). */
export async function moveVirtualDisk(client: VimClient, datacenter: Datacenter, source: PathLike, destination: PathLike, opts: Options & { force?: boolean } = {}): Promise<void> {
  const src = asPath(source);
  const dst = asPath(destination);
  await runTask(
    client,
    "MoveVirtualDisk_Task",
    diskManager(client),
    { sourceName: src.toString(), sourceDatacenter: datacenter.ref, destName: dst.toString(), destDatacenter: datacenter.ref, force: opts.force ?? false },
    { ...opts, checkApplied: moveCheck(client, datacenter, "MoveVirtualDisk_Task", src, dst) },
  );
}

/** Deletes a virtual disk (descriptor and extents). Resolves false when it was not there. */
export async function deleteVirtualDisk(client: VimClient, datacenter: Datacenter, disk: PathLike, opts: Options & { mustExist?: boolean } = {}): Promise<boolean> {
  const p = asPath(disk);
  try {
    await runTask(
      client,
      "DeleteVirtualDisk_Task",
      diskManager(client),
      { name: p.toString(), datacenter: datacenter.ref },
      { ...opts, checkApplied: async () => ((await fileExists(client, datacenter, p)) ? { applied: false } : { applied: true }) },
    );
    return true;
  } catch (err) {
    if (err instanceof FileNotFoundFault && !opts.mustExist) return false;
    throw err;
  }
}

/**
 * Grows a virtual disk to `newCapacityKb` (Nova's sized base disk). Growing to the
 * size it has already is harmless, so after a lost answer it is `check`ed by the
 * caller's reading of the capacity when given (e.g. from the descriptor), else it is
 * an OutcomeUnknownError.
 */
export async function extendVirtualDisk(
  client: VimClient,
  datacenter: Datacenter,
  disk: PathLike,
  newCapacityKb: number,
  opts: Options & { eagerZero?: boolean; capacityKb?: () => Promise<number | undefined> } = {},
): Promise<void> {
  const p = asPath(disk);
  const readCapacity = opts.capacityKb;
  await runTask(
    client,
    "ExtendVirtualDisk_Task",
    diskManager(client),
    { name: p.toString(), datacenter: datacenter.ref, newCapacityKb, eagerZero: opts.eagerZero },
    {
      ...opts,
      ...(readCapacity
        ? { checkApplied: async () => ((await readCapacity()) === newCapacityKb ? { applied: true as const } : { applied: false as const }) }
        : {}),
    },
  );
}
