// A flat descriptor's extents given as sources of their own (SourceSpec.extents): each
// a path or an http(s) URL, in the descriptor's extent order. For a disk whose -flat
// file does not sit beside its descriptor: another folder, another server, or a
// presigned URL whose signature is per object, so it cannot be derived from the
// descriptor's URL.
import { resolve } from "node:path";
import { ImageFormatError, MissingExtentError, SourceChangedError, SourceNotFoundError, UnsupportedImageError } from "./image-errors.js";
import { fetchSource, httpTarget, rangeBytes, type HttpTarget } from "./image-source-http.js";
import { fileStream, statFile, type Holdings } from "./image-source-read.js";
import { SECTOR, type VmdkDescriptor } from "./vmdk.js";

const isUrl = (s: string) => /^https?:\/\//i.test(s);

export type GivenExtent = { offsetBytes: number; lengthBytes: number } & (
  | { kind: "file"; path: string; size: number; mtimeMs: number }
  | { kind: "url"; target: HttpTarget; size: number | undefined; etag: string | undefined; lastModified: string | undefined }
);

/** What a given extent was when inspected (in the source's fingerprint). */
export type ExtentPrint = { path: string; size: number; mtimeMs: number } | { url: string; size?: number; etag?: string; lastModified?: string };

/** Each given extent, checked against the descriptor's extent line: it exists and is long enough. */
export async function givenExtents(descriptor: VmdkDescriptor, given: readonly string[], opts: { name: string; headers?: Record<string, string>; signal?: AbortSignal }): Promise<GivenExtent[]> {
  const { name } = opts;
  if (given.length !== descriptor.extents.length) {
    throw new UnsupportedImageError(
      name,
      `a descriptor of ${descriptor.extents.length} extent${descriptor.extents.length === 1 ? "" : "s"} with ${given.length} extent source${given.length === 1 ? "" : "s"} given`,
      `Give one extent source per extent line of the descriptor, in order (${descriptor.extents.map((e) => e.fileName ?? "?").join(", ")}).`,
    );
  }
  const out: GivenExtent[] = [];
  const missing: string[] = [];
  for (const [i, e] of descriptor.extents.entries()) {
    if (e.type !== "FLAT" && e.type !== "VMFS") {
      throw new UnsupportedImageError(name, `a descriptor with a ${e.type} extent`, "Only flat extents can be uploaded from a descriptor; convert the disk to one file with qemu-img.");
    }
    const src = given[i]!;
    const offsetBytes = e.offsetSectors * SECTOR;
    const lengthBytes = e.sizeSectors * SECTOR;
    const short = (size: number, shown: string) => {
      if (size < offsetBytes + lengthBytes) throw new ImageFormatError(name, "truncated", `extent ${shown} of at least ${offsetBytes + lengthBytes} bytes`, `${size} bytes`);
    };
    if (isUrl(src)) {
      const target = httpTarget(src, opts.headers, opts.signal);
      const head = await fetchSource(target, { method: "HEAD" }).catch((err: unknown) => {
        if (err instanceof SourceNotFoundError) return undefined;
        throw err;
      });
      head?.body.destroy();
      if (!head) {
        missing.push(target.name);
        continue;
      }
      if (head.size !== undefined) short(head.size, target.name);
      out.push({ kind: "url", target: { ...target, url: head.url, headers: head.headers }, offsetBytes, lengthBytes, size: head.size, etag: head.etag, lastModified: head.lastModified });
    } else {
      const path = resolve(src);
      let st;
      try {
        st = await statFile(src, path);
      } catch (err) {
        if (!(err instanceof SourceNotFoundError)) throw err;
        missing.push(path);
        continue;
      }
      if (!st.isFile()) throw new UnsupportedImageError(path, "a directory or device", "Give the path of the extent file.");
      short(st.size, path);
      out.push({ kind: "file", path, offsetBytes, lengthBytes, size: st.size, mtimeMs: st.mtimeMs });
    }
  }
  if (missing.length) throw new MissingExtentError(name, missing, "the extents given");
  return out;
}

export function extentPrints(extents: readonly GivenExtent[]): ExtentPrint[] {
  return extents.map((e) =>
    e.kind === "file"
      ? { path: e.path, size: e.size, mtimeMs: e.mtimeMs }
      : { url: e.target.url, ...(e.size !== undefined ? { size: e.size } : {}), ...(e.etag !== undefined ? { etag: e.etag } : {}), ...(e.lastModified !== undefined ? { lastModified: e.lastModified } : {}) },
  );
}

/** Throws SourceChangedError when the extents are not what was inspected. */
export function checkExtents(name: string, before: readonly ExtentPrint[] | undefined, now: readonly GivenExtent[]): void {
  if (!before) return;
  const after = extentPrints(now);
  const changes: string[] = [];
  for (const [i, b] of before.entries()) {
    const a = after[i];
    if (JSON.stringify(a) === JSON.stringify(b)) continue;
    changes.push(`extent ${i + 1}: ${JSON.stringify(b)} → ${JSON.stringify(a ?? "gone")}`);
  }
  if (changes.length) throw new SourceChangedError(name, changes);
}

/** The disk's bytes from the given extents, in order. */
export async function* givenExtentBytes(extents: readonly GivenExtent[], h: Holdings, signal?: AbortSignal): AsyncGenerator<Buffer> {
  for (const e of extents) {
    if (e.lengthBytes === 0) continue;
    const end = e.offsetBytes + e.lengthBytes - 1;
    if (e.kind === "file") yield* fileStream(h, e.path, signal, { start: e.offsetBytes, end }) as AsyncIterable<Buffer>;
    else yield* rangeBytes(e.target, e.offsetBytes, end, e);
  }
}
