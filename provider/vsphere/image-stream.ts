// Detection over a stream: read only the prefix that detection needs, then hand back
// a stream of the whole original bytes (the prefix, then the rest of the source) so the
// caller uploads what it inspected without reading the source twice or buffering it.
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { ByteReader, type ByteSource } from "./byte-reader.js";
import { ImageFormatError, MissingExtentError, UnsupportedImageError } from "./image-errors.js";
import { checkTotalSize, describeFormat, detectImage, PREFIX_BYTES, type ImageFormat, type ImageInfo } from "./image-format.js";
import { describeBytes, SECTOR, type VmdkDescriptor } from "./vmdk.js";

export interface SniffOptions {
  /** Names the source in errors (a path or URL). */
  source?: string;
  /** The total size when known (a Content-Length): checked against the bytes that arrive. */
  size?: number;
  /** The formats acceptable here: anything else is a wrong-magic error (e.g. ["vmdk"] for an OVA's disk). */
  expect?: readonly ImageFormat[];
}

export interface SniffedImage {
  info: ImageInfo;
  /**
   * The whole source, byte for byte. Reading it to the end also checks the total size
   * (a short download, a raw disk that is not whole sectors) and fails the stream if wrong.
   * Destroying it closes the source.
   */
  stream: Readable;
  /** Bytes pulled from the source to decide (the stream replays them first). */
  prefixBytes: number;
}

/** Detects a stream's image format from its first bytes; see SniffedImage. */
export async function sniffImage(source: ByteSource, opts: SniffOptions = {}): Promise<SniffedImage> {
  const name = opts.source ?? "image";
  const reader = new ByteReader(source);
  let info: ImageInfo;
  try {
    info = await detect(reader, name, opts);
  } catch (err) {
    await reader.close();
    throw err;
  }
  const stream = Readable.from(replay(reader, info, name), { objectMode: false, highWaterMark: PREFIX_BYTES });
  // A stream destroyed before its first read never starts the generator, so its finally would not close the source.
  stream.once("close", () => void reader.close());
  return { info, prefixBytes: reader.pulled, stream };
}

async function detect(reader: ByteReader, source: string, opts: SniffOptions): Promise<ImageInfo> {
  let want = PREFIX_BYTES;
  for (;;) {
    const prefix = await reader.peek(want);
    const complete = prefix.length < want;
    let found: ReturnType<typeof detectImage>;
    try {
      found = detectImage(prefix, { source, complete, ...(opts.size !== undefined ? { size: opts.size } : {}) });
    } catch (err) {
      // Where one format is expected, bytes that are none at all are a wrong magic.
      if (opts.expect && err instanceof ImageFormatError && err.reason === "notSectorAligned") throw wrongFormat(source, opts.expect, prefix, undefined);
      throw err;
    }
    if ("info" in found) {
      if (opts.expect && !opts.expect.includes(found.info.format)) throw wrongFormat(source, opts.expect, prefix, found.info);
      return found.info;
    }
    if (found.needBytes <= prefix.length) throw new Error(`detectImage asked for ${found.needBytes} bytes with ${prefix.length} in hand`);
    want = found.needBytes;
  }
}

function wrongFormat(source: string, expect: readonly ImageFormat[], prefix: Buffer, info: ImageInfo | undefined): ImageFormatError {
  const wanted = expect.map((f) => (f === "vmdk" ? 'a VMDK (magic "KDMV")' : f === "vmdkDescriptor" ? "a VMDK descriptor" : f)).join(" or ");
  const found = `${info ? `${describeFormat(info)}, ` : ""}${describeBytes(prefix.subarray(0, 4))}`;
  return new ImageFormatError(source, "badMagic", wanted, found);
}

async function* replay(reader: ByteReader, info: ImageInfo, source: string): AsyncGenerator<Buffer> {
  let total = 0;
  try {
    for await (const chunk of reader.rest()) {
      total += chunk.length;
      yield chunk;
    }
    checkTotalSize(info, total, source);
  } finally {
    await reader.close();
  }
}

/** A flat extent of a local descriptor, resolved to its file. */
export interface LocalExtent {
  /** As the descriptor names it. */
  fileName: string;
  path: string;
  /** Where the disk's bytes start in the file, and how many there are. */
  offsetBytes: number;
  lengthBytes: number;
}

export type SniffedFile = SniffedImage & {
  /** For a descriptor: its extent files beside it, checked to exist and be long enough. */
  extents: LocalExtent[];
};

/** sniffImage for a local file: its size known up front, a descriptor's extents checked. */
export async function sniffImageFile(path: string, opts: Omit<SniffOptions, "size"> = {}): Promise<SniffedFile> {
  const source = opts.source ?? path;
  const st = await stat(path);
  if (!st.isFile()) throw new UnsupportedImageError(source, "a directory or device", "Give the path of an image file.");
  const sniffed = await sniffImage(createReadStream(path, { highWaterMark: PREFIX_BYTES }), { ...opts, source, size: st.size });
  if (sniffed.info.format !== "vmdkDescriptor") return { ...sniffed, extents: [] };
  try {
    return { ...sniffed, extents: await resolveExtents(sniffed.info.vmdk.descriptor, dirname(path), source) };
  } catch (err) {
    sniffed.stream.destroy();
    throw err;
  }
}

/**
 * Finds a descriptor's data extents in `dir`. Names must be plain file names (as VMware
 * writes them): a descriptor that points elsewhere could make an upload read any file.
 */
export async function resolveExtents(descriptor: VmdkDescriptor, dir: string, source: string): Promise<LocalExtent[]> {
  const out: LocalExtent[] = [];
  const missing: string[] = [];
  for (const e of descriptor.extents) {
    if (e.type !== "FLAT" && e.type !== "VMFS") {
      throw new UnsupportedImageError(source, `a descriptor with a ${e.type} extent`, "Only flat extents can be uploaded from a descriptor; convert the disk to one file with qemu-img.");
    }
    const fileName = e.fileName ?? "";
    if (fileName === "" || /[/\\]/.test(fileName) || fileName === "." || fileName === "..") {
      throw new UnsupportedImageError(source, `a descriptor whose extent is ${JSON.stringify(fileName)}`, "Extents must be files beside the descriptor, named without a folder.");
    }
    const path = join(dir, fileName);
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) {
      missing.push(fileName);
      continue;
    }
    const offsetBytes = e.offsetSectors * SECTOR;
    const lengthBytes = e.sizeSectors * SECTOR;
    if (st.size < offsetBytes + lengthBytes) {
      throw new ImageFormatError(source, "truncated", `extent "${fileName}" of at least ${offsetBytes + lengthBytes} bytes`, `${st.size} bytes`);
    }
    out.push({ fileName, path, offsetBytes, lengthBytes });
  }
  if (missing.length) throw new MissingExtentError(source, missing, dir);
  return out;
}

/** The disk's bytes from its flat extents, in order (what a flat upload PUTs). */
export function flatExtentsStream(extents: readonly LocalExtent[]): Readable {
  async function* all(): AsyncGenerator<Buffer> {
    for (const e of extents) {
      if (e.lengthBytes === 0) continue;
      yield* createReadStream(e.path, { start: e.offsetBytes, end: e.offsetBytes + e.lengthBytes - 1, highWaterMark: PREFIX_BYTES }) as AsyncIterable<Buffer>;
    }
  }
  return Readable.from(all(), { objectMode: false, highWaterMark: PREFIX_BYTES });
}
