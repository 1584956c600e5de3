// HTTP transfers to and from datastores: vCenter's `/folder/<path>?dcPath=&dsName=`
// (the datastore HTTP interface), on the session's cookie and connection pool
// (client.http.request).
//
// Uploads stream: the source is pulled as the socket drains, hashed (sha256, md5)
// and counted on the way, never held whole. A large upload is hashed on a worker thread
// where the machine has a core to spare for it, else inline (hash-worker.ts says why and
// what was measured). A source given as a stream
// is never resent, and once a byte went out a broken connection is UploadIncompleteError
// (the file may be partial: the caller deletes it). Downloads hand back the answer's
// stream.
import { Readable } from "node:stream";
import type { VimClient } from "./client.js";
import { DatastorePath, type PathLike } from "./datastore.js";
import { hasherFor, type Hasher } from "./hash-worker.js";
import { HttpError, OutcomeUnknownError, UploadIncompleteError, UploadSourceError, vimFault } from "./errors.js";
import type { StreamBody } from "./http.js";
import { datacenterPath, type Datacenter } from "./inventory.js";

export type ChecksumAlgorithm = "sha256" | "md5";

const asPath = (p: PathLike): DatastorePath => (typeof p === "string" ? DatastorePath.parse(p) : p);

// ---------------------------------------------------------------------------
// URLs

/**
 * `/folder/<path>?dcPath=<dc path>&dsName=<ds>`: each name of the path and both
 * query values percent-encoded (UTF-8), so spaces, brackets, "#", "?", "&" and
 * non-ASCII names reach the right file.
 */
export function folderUrl(dcPath: string, file: DatastorePath): string {
  const path = file.path.split("/").map(encodeURIComponent).join("/");
  return `/folder/${path}?dcPath=${encodeURIComponent(dcPath)}&dsName=${encodeURIComponent(file.datastore)}`;
}

// ---------------------------------------------------------------------------
// Upload

export interface StreamOptions {
  /** Bytes the source will give: sent as Content-Length (vCenter and ESXi require it) and checked. */
  length: number;
  /** Bytes handed to the connection so far (monotonic), and the total. */
  onProgress?: (sent: number, total: number) => void;
  /** Digests computed while streaming (default sha256 only). */
  checksums?: ChecksumAlgorithm[];
}

export interface UploadOptions extends StreamOptions {
  /** The datacenter's inventory path, when known (default: read once per client). */
  dcPath?: string;
}

/** What went out: bytes counted and digests computed on the way. */
export interface StreamResult {
  bytes: number;
  /** Hex digests of the bytes sent, as asked for. */
  sha256?: string;
  md5?: string;
}

export interface UploadResult extends StreamResult {
  path: DatastorePath;
}

/** Bytes to upload, read once: a stream, an async or plain iterable of chunks. */
export type UploadStream = StreamBody | Iterable<Uint8Array>;
/** An upload source: a stream (sent once), or a function that makes a fresh one (may be retried before any byte went out). */
export type UploadSource = UploadStream | (() => UploadStream);

/** Where a streamed upload goes. */
interface Target {
  method: "PUT" | "POST";
  /** Another origin than vCenter's (an NFC lease URL names an ESXi host). */
  origin?: string;
  path: string;
  contentType?: string;
  headers?: Record<string, string>;
  /** What errors call it: a datastore path or the URL's path. */
  name: string;
}

/** The one streaming upload: counted, hashed, progress told, never resent once a byte went out. */
async function streamUpload(client: VimClient, target: Target, source: UploadSource, opts: StreamOptions): Promise<StreamResult> {
  const { name } = target;
  if (!Number.isSafeInteger(opts.length) || opts.length < 0) throw new TypeError(`upload to ${name}: length must be a whole number of bytes, got ${opts.length}`);
  const algorithms = opts.checksums ?? ["sha256"];
  const origin = target.origin ?? client.http.origin;

  // State of the current attempt: a new one only when the source can be made again.
  let digests: Promise<Partial<Record<ChecksumAlgorithm, string>>> | undefined;
  let count = 0;
  let sourceError: UploadSourceError | undefined;
  let sent = 0;
  const hashed = (stream: UploadStream): StreamBody => {
    digests = undefined;
    count = 0;
    sourceError = undefined;
    // A bare async iterable: the channel makes the one Readable the request pulls from.
    return (async function* () {
      // Taken on the first pull, so an attempt that never reads its body holds no worker;
      // the finally gives it back whichever way the body ends (error, or the request's abort).
      let hasher: Hasher<ChecksumAlgorithm> | undefined;
      try {
        hasher = hasherFor(algorithms, opts.length);
        for await (const chunk of stream as AsyncIterable<Uint8Array | string> | Iterable<Uint8Array>) {
          const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
          if (bytes.byteLength === 0) continue;
          count += bytes.byteLength;
          if (count > opts.length) throw (sourceError = new UploadSourceError(name, origin, `the source gave more than the ${opts.length} bytes announced`));
          const wait = hasher.update(bytes);
          if (wait) await wait;
          if (count === opts.length) {
            // Finished at the last byte, not at the source's end: vCenter may answer
            // before the source has said it ended. The tail is hashed meanwhile.
            digests = hasher.finish();
            digests.catch(() => {});
          }
          yield bytes;
        }
        if (opts.length === 0) digests = hasher.finish();
      } catch (err) {
        sourceError ??= new UploadSourceError(name, origin, `reading the source failed after ${count} bytes`, err);
        throw sourceError;
      } finally {
        // Awaited: the worker is back in its pool before the upload's error is seen.
        if (!digests) await hasher?.abort();
      }
      if (count !== opts.length) throw (sourceError = new UploadSourceError(name, origin, `the source ended after ${count} of the ${opts.length} bytes announced`));
    })();
  };
  const body = typeof source === "function" ? () => hashed(source()) : hashed(source);

  let res;
  try {
    res = await client.http.request({
      method: target.method,
      path: target.path,
      ...(target.origin !== undefined ? { origin: target.origin } : {}),
      ...(target.contentType !== undefined ? { contentType: target.contentType } : {}),
      ...(target.headers !== undefined ? { headers: target.headers } : {}),
      body,
      length: opts.length,
      onProgress: (n) => {
        // The channel counts per attempt; a retried attempt starts again from 0.
        sent = n;
        opts.onProgress?.(n, opts.length);
      },
    });
  } catch (err) {
    if (sourceError) throw sourceError;
    if (err instanceof OutcomeUnknownError) throw new UploadIncompleteError(name, origin, sent, opts.length, err.cause ?? err);
    throw err;
  }
  await res.body.dump();
  if (sourceError) throw sourceError;
  if (!digests) throw new UploadSourceError(name, origin, `the server answered after ${count} of the ${opts.length} bytes were read from the source`);
  return { bytes: count, ...(await digests) };
}

/**
 * PUTs `source` to the datastore file (replacing one that is there; the folder must
 * exist on vCenter: makeDirectory first). Resolves once vCenter answered, with the
 * bytes counted and hashed.
 */
export async function upload(client: VimClient, datacenter: Datacenter, file: PathLike, source: UploadSource, opts: UploadOptions): Promise<UploadResult> {
  const path = asPath(file);
  const dcPath = opts.dcPath ?? (await datacenterPath(client, datacenter));
  const r = await streamUpload(client, { method: "PUT", path: folderUrl(dcPath, path), name: path.toString() }, source, opts);
  return { path, ...r };
}

/**
 * Streams `source` to an absolute URL on the session: an NFC lease's device URL
 * (ImportVApp). A "*" host (ESXi's way of saying "the host you reached me by") is
 * vCenter's origin. A disk goes as POST application/x-vnd.vmware-streamVmdk, any
 * other file as PUT with "Overwrite: t", as the lease wants them (ovftool does the same).
 */
export async function uploadToUrl(
  client: VimClient,
  url: string,
  source: UploadSource,
  opts: StreamOptions & { kind: "disk" | "file" },
): Promise<StreamResult> {
  const u = new URL(url.replace(/^(https?:\/\/)\*(?=[:/])/, `$1placeholder.invalid`));
  const origin = u.hostname === "placeholder.invalid" ? client.http.origin : u.origin;
  const target: Target =
    opts.kind === "disk"
      ? { method: "POST", contentType: "application/x-vnd.vmware-streamVmdk", origin, path: u.pathname + u.search, name: u.pathname }
      : { method: "PUT", headers: { overwrite: "t" }, origin, path: u.pathname + u.search, name: u.pathname };
  return streamUpload(client, target, source, opts);
}

// ---------------------------------------------------------------------------
// Download

export interface Download {
  path: DatastorePath;
  /** The file's bytes; read it to the end or destroy it. */
  stream: Readable;
  /** Content-Length, when the server sent one. */
  length: number | undefined;
  lastModified: Date | undefined;
}

function headerNumber(v: string | string[] | undefined): number | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  const n = s === undefined ? NaN : Number(s);
  return Number.isSafeInteger(n) ? n : undefined;
}

function headerDate(v: string | string[] | undefined): Date | undefined {
  const s = Array.isArray(v) ? v[0] : v;
  const d = s === undefined ? undefined : new Date(s);
  return d && !Number.isNaN(d.getTime()) ? d : undefined;
}

/** A 404 is the datastore's FileNotFound: the same fault as the SOAP calls give. */
function notFound(err: unknown, path: DatastorePath): unknown {
  if (err instanceof HttpError && err.status === 404) {
    return vimFault("FileNotFound", `${path} not found (HTTP 404 from ${err.endpoint})`, { file: path.toString() });
  }
  return err;
}

/** GETs a datastore file as a stream (FileNotFoundFault when there is none). */
export async function download(client: VimClient, datacenter: Datacenter, file: PathLike, opts: { dcPath?: string } = {}): Promise<Download> {
  const path = asPath(file);
  const dcPath = opts.dcPath ?? (await datacenterPath(client, datacenter));
  try {
    const res = await client.http.request({ method: "GET", path: folderUrl(dcPath, path) });
    return {
      path,
      stream: res.body,
      length: headerNumber(res.headers["content-length"]),
      lastModified: headerDate(res.headers["last-modified"]),
    };
  } catch (err) {
    throw notFound(err, path);
  }
}

/** Size and modification time by HEAD; undefined when the file does not exist. */
export async function headFile(
  client: VimClient,
  datacenter: Datacenter,
  file: PathLike,
  opts: { dcPath?: string } = {},
): Promise<{ size: number | undefined; modified: Date | undefined } | undefined> {
  const path = asPath(file);
  const dcPath = opts.dcPath ?? (await datacenterPath(client, datacenter));
  try {
    const res = await client.http.request({ method: "HEAD", path: folderUrl(dcPath, path) });
    await res.body.dump();
    return { size: headerNumber(res.headers["content-length"]), modified: headerDate(res.headers["last-modified"]) };
  } catch (err) {
    if (err instanceof HttpError && err.status === 404) return undefined;
    throw err;
  }
}
