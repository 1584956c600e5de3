// Checksums computed in passing: the same digests as hashing the whole file, the bytes
// passed on unchanged, and a stream that breaks gives no checksum.
import { createHash, randomBytes } from "node:crypto";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, expect, it } from "vitest";
import { DigestStream, parseChecksum, verifyChecksum } from "../../provider/vsphere/checksum.js";
import { ChecksumMismatchError } from "../../provider/vsphere/image-errors.js";

const hex = (alg: string, b: Buffer) => createHash(alg).update(b).digest("hex");

function collect() {
  const parts: Buffer[] = [];
  return { parts, sink: new Writable({ write: (c: Buffer, _e, cb) => (parts.push(c), cb()) }) };
}

describe("DigestStream", () => {
  it("passes the bytes through and gives sha256 (and md5 when asked) at the end", async () => {
    const data = randomBytes(3 * 1024 * 1024 + 17);
    const d = new DigestStream(["md5"]);
    const { parts, sink } = collect();
    const chunks = Array.from({ length: Math.ceil(data.length / 65536) }, (_, i) => data.subarray(i * 65536, (i + 1) * 65536));
    await pipeline(Readable.from(chunks), d, sink);
    expect(Buffer.concat(parts).equals(data)).toBe(true);
    expect(await d.result).toEqual({ bytes: data.length, sha256: hex("sha256", data), md5: hex("md5", data) });
  });

  it("gives sha256 alone by default", async () => {
    const d = new DigestStream();
    await pipeline(Readable.from([Buffer.from("abc")]), d, collect().sink);
    expect(await d.result).toEqual({ bytes: 3, sha256: hex("sha256", Buffer.from("abc")) });
  });

  it("a stream that fails midway rejects the result", async () => {
    const d = new DigestStream();
    async function* broken() {
      yield Buffer.from("partial");
      throw new Error("connection reset");
    }
    await expect(pipeline(Readable.from(broken()), d, collect().sink)).rejects.toThrow("connection reset");
    await expect(d.result).rejects.toThrow("connection reset");
  });
});

describe("declared checksums", () => {
  it("parses sha256:/md5: and says what is wrong otherwise", () => {
    const s = "a".repeat(64);
    expect(parseChecksum(`sha256:${s.toUpperCase()}`)).toEqual({ checksum: { algorithm: "sha256", hex: s } });
    expect(parseChecksum(`md5:${"0".repeat(32)}`)).toEqual({ checksum: { algorithm: "md5", hex: "0".repeat(32) } });
    expect(parseChecksum("sha256:abc")).toEqual({ error: expect.stringMatching(/64 hex digits, this has 3/) });
    expect(parseChecksum("crc32:1234")).toEqual({ error: expect.stringMatching(/not "sha256:<hex>"/) });
  });

  it("a mismatch names both values", () => {
    const actual = { bytes: 3, sha256: "b".repeat(64) };
    expect(() => verifyChecksum("img.vmdk", { algorithm: "sha256", hex: "b".repeat(64) }, actual)).not.toThrow();
    const err = (() => {
      try {
        verifyChecksum("img.vmdk", { algorithm: "sha256", hex: "a".repeat(64) }, actual);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ChecksumMismatchError);
    expect(err).toMatchObject({ code: "ChecksumMismatch", expected: "a".repeat(64), actual: "b".repeat(64) });
    expect((err as Error).message).toContain("a".repeat(64));
    expect((err as Error).message).toContain("b".repeat(64));
  });
});
