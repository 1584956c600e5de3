// Checksums computed as the bytes stream past, on their way to the datastore: sha256
// always, md5 (Glance's checksum) when asked for. No second read of the source.
import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { ChecksumMismatchError } from "./image-errors.js";

export type DigestAlgorithm = "sha256" | "md5" | "sha1" | "sha512";

export interface Digests {
  /** Bytes that went through. */
  bytes: number;
  /** Lower-case hex, per algorithm asked for (sha256 always). */
  sha256: string;
  md5?: string;
  sha1?: string;
  sha512?: string;
}

/**
 * A pass-through that hashes what flows through it. `result` settles when the stream
 * ends (resolved) or is destroyed (rejected: a partial hash is no checksum).
 */
export class DigestStream extends Transform {
  readonly result: Promise<Digests>;
  private readonly hashes: Array<[DigestAlgorithm, Hash]>;
  private bytes = 0;
  private settle!: { resolve: (d: Digests) => void; reject: (e: unknown) => void };

  constructor(algorithms: readonly DigestAlgorithm[] = ["sha256"]) {
    super();
    const algs = new Set<DigestAlgorithm>(["sha256", ...algorithms]);
    this.hashes = [...algs].map((a) => [a, createHash(a)]);
    this.result = new Promise<Digests>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // Callers that only pipe need not await it; an unread rejection must not crash the process.
    this.result.catch(() => {});
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    for (const [, h] of this.hashes) h.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    const out = { bytes: this.bytes } as Digests;
    for (const [a, h] of this.hashes) out[a] = h.digest("hex");
    this.settle.resolve(out);
    done();
  }

  override _destroy(err: Error | null, done: (e: Error | null) => void): void {
    this.settle.reject(err ?? new Error("the stream was closed before its end: no checksum"));
    done(err);
  }
}

/** A declared checksum, as the Image input takes it: "sha256:<64 hex>" or "md5:<32 hex>". */
export interface Checksum {
  algorithm: "sha256" | "md5";
  hex: string;
}

const HEX_LENGTH = { sha256: 64, md5: 32 } as const;

/** Parses "sha256:…" / "md5:…"; `error` says what is wrong when it is malformed. */
export function parseChecksum(text: string): { checksum: Checksum } | { error: string } {
  const m = /^(sha256|md5):([0-9a-fA-F]+)$/.exec(text.trim());
  if (!m) return { error: `checksum ${JSON.stringify(text)} is not "sha256:<hex>" or "md5:<hex>"` };
  const algorithm = m[1] as Checksum["algorithm"];
  const hex = m[2]!.toLowerCase();
  if (hex.length !== HEX_LENGTH[algorithm]) {
    return { error: `checksum ${JSON.stringify(text)}: a ${algorithm} is ${HEX_LENGTH[algorithm]} hex digits, this has ${hex.length}` };
  }
  return { checksum: { algorithm, hex } };
}

/** Throws ChecksumMismatchError when the streamed bytes' digest is not the declared one. */
export function verifyChecksum(source: string, expected: Checksum, actual: Digests): void {
  const got = actual[expected.algorithm];
  if (got === undefined) throw new Error(`verifyChecksum: ${expected.algorithm} was not computed (ask DigestStream for it)`);
  if (got !== expected.hex) throw new ChecksumMismatchError(source, expected.algorithm, expected.hex, got);
}
