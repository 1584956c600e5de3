// A streaming tar reader, enough for OVA files: ustar and GNU headers, GNU long names
// ('L'), pax extended headers ('x': path, size), 512-byte padding. Entries come one by
// one from a ByteReader; an entry's body streams and is never held whole.
import type { ByteReader } from "./byte-reader.js";
import { ImageFormatError } from "./image-errors.js";
import { describeBytes } from "./vmdk.js";

export const TAR_BLOCK = 512;
/** Offset of "ustar" in a POSIX or GNU tar header. */
export const USTAR_MAGIC_OFFSET = 257;

export interface TarHeader {
  name: string;
  size: number;
  /** The typeflag: "0" file ("\0" in old tars reads as "0"), "5" directory, "L" GNU long name, "x" pax… */
  type: string;
}

const cstr = (b: Buffer, start: number, len: number) => {
  const f = b.subarray(start, start + len);
  const nul = f.indexOf(0);
  return (nul < 0 ? f : f.subarray(0, nul)).toString("utf8");
};

/** A numeric field: octal text, or GNU base-256 (high bit set) for values past 8 GiB. */
function numeric(b: Buffer, start: number, len: number, source: string, field: string): number {
  const f = b.subarray(start, start + len);
  if (f[0]! & 0x80) {
    let v = BigInt(f[0]! & 0x7f);
    for (const x of f.subarray(1)) v = (v << 8n) | BigInt(x);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ImageFormatError(source, "corrupt", `a tar ${field}`, `0x${v.toString(16)}`);
    return Number(v);
  }
  const text = cstr(f, 0, len).trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new ImageFormatError(source, "corrupt", `an octal tar ${field}`, JSON.stringify(text));
  return parseInt(text, 8);
}

/** Whether a block is all zeros (the end-of-archive marker). */
const isZero = (b: Buffer) => b.every((x) => x === 0);

/** Parses one 512-byte header block; undefined for an end-of-archive (zero) block. */
export function parseTarHeader(block: Buffer, source: string): TarHeader | undefined {
  if (block.length < TAR_BLOCK) throw new ImageFormatError(source, "truncated", "a 512-byte tar header", `${block.length} bytes`);
  if (isZero(block)) return undefined;
  const stored = numeric(block, 148, 8, source, "header checksum");
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  if (sum !== stored) {
    throw new ImageFormatError(source, "corrupt", `a tar header with checksum ${sum}`, `checksum ${stored} (${describeBytes(block.subarray(0, 16))}…)`);
  }
  const ustar = block.subarray(USTAR_MAGIC_OFFSET, USTAR_MAGIC_OFFSET + 5).toString("latin1") === "ustar";
  const prefix = ustar ? cstr(block, 345, 155) : "";
  const name = cstr(block, 0, 100);
  const flag = block[156] === 0 ? "0" : String.fromCharCode(block[156]!);
  return { name: prefix ? `${prefix}/${name}` : name, size: numeric(block, 124, 12, source, "entry size"), type: flag };
}

export interface TarEntry extends TarHeader {
  /** Byte offset of the entry's body in the archive. */
  offset: number;
  /** The whole body, refused past `limit` bytes (for small members: .ovf, .mf). */
  readAll(limit: number): Promise<Buffer>;
  /** The body as a stream; an archive that ends early fails it as truncated. */
  stream(): AsyncGenerator<Buffer>;
}

const padded = (n: number) => Math.ceil(n / TAR_BLOCK) * TAR_BLOCK;

/** pax records: "<len> key=value\n" each. */
function paxRecords(b: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < b.length) {
    const sp = b.indexOf(0x20, i);
    if (sp < 0) break;
    const len = Number(b.subarray(i, sp).toString("latin1"));
    if (!Number.isInteger(len) || len <= 0) break;
    const rec = b.subarray(sp + 1, i + len - 1).toString("utf8");
    const eq = rec.indexOf("=");
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return out;
}

/**
 * The archive's regular entries in order. Read or stream each entry before asking for
 * the next; whatever of it is left is skipped (streamed past, not buffered).
 */
export async function* tarEntries(reader: ByteReader, source: string): AsyncGenerator<TarEntry> {
  let longName: string | undefined;
  let pax: Record<string, string> = {};
  for (;;) {
    const block = await reader.read(TAR_BLOCK);
    if (block.length === 0) return; // no end marker: tolerated, as GNU tar does
    const h = parseTarHeader(block, source);
    if (!h) return;
    const offset = reader.position;
    const end = offset + padded(h.size);
    const body = async (limit: number) => {
      if (h.size > limit) throw new ImageFormatError(source, "tooLarge", `tar member "${h.name}" of at most ${limit} bytes`, `${h.size} bytes`);
      const b = await reader.read(h.size);
      if (b.length < h.size) throw truncated(source, h.name, h.size, b.length);
      return b;
    };
    if (h.type === "L" || h.type === "x" || h.type === "g") {
      const meta = await body(1 << 20);
      if (h.type === "L") longName = cstr(meta, 0, meta.length);
      if (h.type === "x") pax = paxRecords(meta);
      await reader.skip(end - reader.position);
      continue;
    }
    const entry: TarEntry = {
      // "./disk.vmdk" (tar -C dir .) is the file an .ovf calls "disk.vmdk".
      name: (pax.path ?? longName ?? h.name).replace(/^(\.\/)+/, ""),
      size: pax.size !== undefined ? Number(pax.size) : h.size,
      type: h.type,
      offset,
      readAll: body,
      async *stream() {
        let got = 0;
        for await (const chunk of reader.take(entry.size)) {
          got += chunk.length;
          yield chunk;
        }
        if (got < entry.size) throw truncated(source, entry.name, entry.size, got);
      },
    };
    longName = undefined;
    pax = {};
    yield entry;
    const entryEnd = offset + padded(entry.size);
    if (reader.position < entryEnd) {
      const want = entryEnd - reader.position;
      const skipped = await reader.skip(want);
      if (skipped < want && reader.position < offset + entry.size) throw truncated(source, entry.name, entry.size, reader.position - offset);
    }
  }
}

function truncated(source: string, name: string, size: number, got: number): ImageFormatError {
  return new ImageFormatError(source, "truncated", `${size} bytes of tar member "${name}"`, `the archive ends after ${got}`);
}

/** The first entry's name from the archive's first bytes (a long name's data when it is one), if they hold it. */
export function firstTarEntryName(prefix: Buffer, source: string): string | undefined {
  const h = parseTarHeader(prefix.subarray(0, TAR_BLOCK), source);
  if (!h) return undefined;
  if (h.type === "L" && prefix.length >= TAR_BLOCK + h.size) return cstr(prefix, TAR_BLOCK, h.size);
  if (h.type === "x" && prefix.length >= TAR_BLOCK + h.size) {
    const rec = paxRecords(prefix.subarray(TAR_BLOCK, TAR_BLOCK + h.size));
    if (rec.path) return rec.path;
    const next = prefix.subarray(TAR_BLOCK + padded(h.size), TAR_BLOCK + padded(h.size) + TAR_BLOCK);
    return next.length === TAR_BLOCK ? parseTarHeader(next, source)?.name : undefined;
  }
  return h.type === "L" || h.type === "x" ? undefined : h.name;
}
