// Reading an image source's bytes (a file, an HTTP body, a descriptor's extents) with
// the streams it opens held, so a caller's dispose closes them and waits until they are
// closed, and the digests of what went past (image-source.ts defines which bytes those are).
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { finished } from "node:stream/promises";
import type { ByteSource } from "./byte-reader.js";
import { SourceChangedError, SourceNotFoundError } from "./image-errors.js";
import { bodyChunks, fetchSource, httpTarget, rangeBytes, urlExtents, type HttpTarget } from "./image-source-http.js";
import type { InspectedSource, SourceDigestAlgorithm, SourceDigests } from "./image-source.js";
import { checkExtents, givenExtentBytes, givenExtents } from "./image-source-extents.js";
import { resolveExtents } from "./image-stream.js";

export function notFound(given: string, path: string): SourceNotFoundError {
  const rel = given === path ? "" : `; a relative path is taken from the program's directory, ${process.cwd()}`;
  return new SourceNotFoundError(path, `no such file (the source ${JSON.stringify(given)} resolves to ${path}${rel})`);
}

export async function statFile(given: string, path: string) {
  try {
    return await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw notFound(given, path);
    throw err;
  }
}


/** Streams opened for a source, so dispose can close them and wait until they are closed. */
export class Holdings {
  private readonly streams = new Set<Readable>();
  private readonly dirs: string[] = [];
  private disposed: Promise<void> | undefined;

  track<T extends Readable>(s: T): T {
    this.streams.add(s);
    return s;
  }

  async tempDir(parent: string | undefined): Promise<string> {
    const dir = await mkdtemp(join(parent ?? tmpdir(), "vsphere-image-"));
    this.dirs.push(dir);
    return dir;
  }

  dispose(): Promise<void> {
    this.disposed ??= (async () => {
      const streams = [...this.streams];
      for (const s of streams) s.destroy();
      await Promise.all(streams.map((s) => finished(s).catch(() => undefined)));
      await Promise.all(this.dirs.map((d) => rm(d, { recursive: true, force: true })));
    })();
    return this.disposed;
  }
}

/** Passes chunks through and hashes them with `algorithms` (none: counts only); `digests` settles at the end, or rejects when the read fails or stops early. */
export function hashTap(source: ByteSource, algorithms: readonly SourceDigestAlgorithm[], name: string): { bytes: AsyncGenerator<Buffer>; digests: Promise<SourceDigests> } {
  let settle!: { resolve: (d: SourceDigests) => void; reject: (e: unknown) => void };
  const digests = new Promise<SourceDigests>((resolve, reject) => (settle = { resolve, reject }));
  digests.catch(() => {});
  async function* bytes(): AsyncGenerator<Buffer> {
    const hashes: Array<[SourceDigestAlgorithm, Hash]> = [...new Set<SourceDigestAlgorithm>(algorithms)].map((a) => [a, createHash(a)]);
    let n = 0;
    let done = false;
    try {
      for await (const c of source) {
        const b = typeof c === "string" ? Buffer.from(c) : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
        for (const [, h] of hashes) h.update(b);
        n += b.length;
        yield b;
      }
      done = true;
      const out = { bytes: n } as SourceDigests;
      for (const [a, h] of hashes) out[a] = h.digest("hex");
      settle.resolve(out);
    } catch (err) {
      done = true;
      settle.reject(err);
      throw err;
    } finally {
      if (!done) settle.reject(new Error(`${name}: the source was closed after ${n} bytes, before its end: no digest`));
    }
  }
  return { bytes: bytes(), digests };
}

/** Bulk reads in 1 MiB chunks: at 64 KiB, the per-chunk cost of the stream and hash steps showed in the upload bench. */
const READ_CHUNK = 1 << 20;

export const fileStream = (h: Holdings, path: string, signal: AbortSignal | undefined, range?: { start: number; end: number }) =>
  h.track(createReadStream(path, { highWaterMark: READ_CHUNK, ...(range ?? {}), ...(signal ? { signal } : {}) }));

const targetOf = (inspected: InspectedSource, signal?: AbortSignal): HttpTarget => httpTarget(inspected.spec.source, inspected.spec.headers, signal);

/** The source's main file or body; for a URL, the GET answer checked against the fingerprint. */
export async function mainBytes(inspected: InspectedSource, h: Holdings, signal?: AbortSignal): Promise<{ bytes: ByteSource; size: number | undefined; headers?: Record<string, string> }> {
  const fp = inspected.fingerprint;
  if (fp.kind === "file") return { bytes: fileStream(h, fp.files[0]!.path, signal), size: fp.files[0]!.size };
  const target = targetOf(inspected, signal);
  const a = await fetchSource(target);
  h.track(a.body);
  const changes: string[] = [];
  if (fp.etag !== undefined && a.etag !== fp.etag) changes.push(`ETag ${fp.etag} → ${a.etag ?? "none"}`);
  if (fp.lastModified !== undefined && a.lastModified !== fp.lastModified) changes.push(`Last-Modified ${fp.lastModified} → ${a.lastModified ?? "none"}`);
  if (fp.size !== undefined && a.size !== fp.size) changes.push(`size ${fp.size} → ${a.size ?? "unknown"}`);
  if (changes.length) {
    a.body.destroy();
    throw new SourceChangedError(inspected.name, changes);
  }
  return { bytes: bodyChunks(target.name, a), size: a.size, headers: a.headers };
}

/** A descriptor's flat extents, in order: the disk's bytes. */
export async function flatBytes(inspected: InspectedSource, h: Holdings, signal?: AbortSignal): Promise<{ bytes: ByteSource; size: number }> {
  if (inspected.info.format !== "vmdkDescriptor") throw new TypeError("flatBytes: not a descriptor");
  const { descriptor } = inspected.info.vmdk;
  const { spec, fingerprint } = inspected;
  if (spec.extents) {
    // Extents given apart: the descriptor is checked as inspected, then each extent is found again and compared.
    if (fingerprint.kind === "url") for await (const _ of (await mainBytes(inspected, h, signal)).bytes);
    const given = await givenExtents(descriptor, spec.extents, { name: inspected.name, ...(spec.headers ? { headers: spec.headers } : {}), ...(signal ? { signal } : {}) });
    checkExtents(inspected.name, fingerprint.extents, given);
    return { bytes: givenExtentBytes(given, h, signal), size: given.reduce((n, e) => n + e.lengthBytes, 0) };
  }
  if (inspected.fingerprint.kind === "file") {
    const extents = await resolveExtents(descriptor, dirname(inspected.fingerprint.files[0]!.path), inspected.name);
    async function* all(): AsyncGenerator<Buffer> {
      for (const e of extents) if (e.lengthBytes > 0) yield* fileStream(h, e.path, signal, { start: e.offsetBytes, end: e.offsetBytes + e.lengthBytes - 1 }) as AsyncIterable<Buffer>;
    }
    return { bytes: all(), size: extents.reduce((n, e) => n + e.lengthBytes, 0) };
  }
  const target = targetOf(inspected, signal);
  // The descriptor is fetched again: the fingerprint is checked, and its extents resolved beside its final URL.
  const main = await mainBytes(inspected, h, signal);
  for await (const _ of main.bytes);
  const extents = await urlExtents(descriptor, { url: inspected.fingerprint.url, headers: main.headers ?? target.headers }, target);
  async function* all(): AsyncGenerator<Buffer> {
    for (const e of extents) yield* rangeBytes({ ...target, url: e.url, headers: main.headers ?? target.headers }, e.offsetBytes, e.offsetBytes + e.lengthBytes - 1, e);
  }
  return { bytes: all(), size: extents.reduce((n, e) => n + e.lengthBytes, 0) };
}

/** The bytes digestSource and openSource's digests are of: the file or body; a descriptor's flat extents; the whole .ova. */
export async function sourceBytes(inspected: InspectedSource, h: Holdings, signal?: AbortSignal): Promise<{ bytes: ByteSource; size: number | undefined }> {
  return inspected.info.format === "vmdkDescriptor" ? flatBytes(inspected, h, signal) : mainBytes(inspected, h, signal);
}

/** Checks a local source's files are as inspected (size and modification time). */
export async function checkFiles(inspected: InspectedSource): Promise<void> {
  if (inspected.fingerprint.kind !== "file") return;
  const changes: string[] = [];
  for (const f of inspected.fingerprint.files) {
    const st = await statFile(f.path, f.path);
    if (st.size !== f.size) changes.push(`${f.path}: size ${f.size} → ${st.size}`);
    else if (st.mtimeMs !== f.mtimeMs) changes.push(`${f.path}: modified ${new Date(f.mtimeMs).toISOString()} → ${new Date(st.mtimeMs).toISOString()}`);
  }
  if (changes.length) throw new SourceChangedError(inspected.name, changes);
}
