// The pull reader under every chunking: whatever the source's chunk boundaries, reads,
// peeks, takes and skips see the bytes at the right offsets, and nothing is pulled early.
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ByteReader } from "../../provider/vsphere/byte-reader.js";

function chunked(data: Buffer, sizes: number[]) {
  const state = { pulled: 0 };
  async function* gen() {
    let i = 0;
    let k = 0;
    while (i < data.length) {
      const n = sizes[k++ % sizes.length]!;
      state.pulled += Math.min(n, data.length - i);
      yield data.subarray(i, i + n);
      i += n;
    }
  }
  return { state, source: gen() };
}

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

describe("ByteReader", () => {
  it.each([[[1]], [[7, 1, 300]], [[512]], [[4096, 3]], [[100_000]]])("chunks of %j: read, peek, take, skip and rest agree with slicing", async (sizes) => {
    const data = randomBytes(20_000);
    const { state, source } = chunked(data, sizes);
    const r = new ByteReader(source);
    expect((await r.peek(10)).equals(data.subarray(0, 10))).toBe(true);
    expect((await r.read(513)).equals(data.subarray(0, 513))).toBe(true);
    expect(state.pulled).toBeLessThanOrEqual(513 + Math.max(...sizes));
    expect(await r.skip(1000)).toBe(1000);
    expect((await collect(r.take(3000))).equals(data.subarray(1513, 4513))).toBe(true);
    expect(r.position).toBe(4513);
    expect((await r.peek(5000)).equals(data.subarray(4513, 9513))).toBe(true);
    expect((await collect(r.rest())).equals(data.subarray(4513))).toBe(true);
    expect(await r.atEnd()).toBe(true);
    expect((await r.read(10)).length).toBe(0);
  });

  it("a read past the end gives what there is; take and skip stop at the end", async () => {
    const data = randomBytes(1000);
    const r = new ByteReader(chunked(data, [300]).source);
    expect(await r.skip(900)).toBe(900);
    expect((await collect(r.take(500))).equals(data.subarray(900))).toBe(true);
    expect(await r.skip(10)).toBe(0);
  });

  it("takes strings from a text-mode stream as their bytes", async () => {
    async function* text() {
      yield "KD";
      yield "MV";
    }
    expect((await new ByteReader(text()).read(4)).toString("latin1")).toBe("KDMV");
  });
});
