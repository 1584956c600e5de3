// A pull reader over a byte stream: read exactly n bytes when a header needs them,
// then hand the rest on as a stream. It holds only what was asked for and not yet
// consumed, so headers can be parsed from a multi-gigabyte source without buffering it.

/** Where image bytes come from: a Node Readable (byte mode) or any async iterable of chunks. */
export type ByteSource = AsyncIterable<Uint8Array | string>;

export class ByteReader {
  private readonly it: AsyncIterator<Uint8Array | string>;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private done = false;
  /** Bytes taken from the source so far (consumed or still buffered here). */
  pulled = 0;
  /** Bytes handed out by read/skip/take so far: the offset of the next byte. */
  position = 0;

  constructor(source: ByteSource) {
    this.it = source[Symbol.asyncIterator]();
  }

  /** Pulls chunks until `n` bytes are buffered or the source ends; returns what is buffered. */
  private async fill(n: number): Promise<number> {
    while (this.buffered < n && !this.done) {
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        break;
      }
      const chunk = typeof r.value === "string" ? Buffer.from(r.value) : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
      if (chunk.length === 0) continue;
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      this.pulled += chunk.length;
    }
    return this.buffered;
  }

  /** Takes up to `n` bytes off the front of the buffer (n ≤ buffered). */
  private shift(n: number): Buffer {
    const out: Buffer[] = [];
    let want = n;
    while (want > 0) {
      const head = this.chunks[0]!;
      if (head.length <= want) {
        out.push(head);
        this.chunks.shift();
        want -= head.length;
      } else {
        out.push(head.subarray(0, want));
        this.chunks[0] = head.subarray(want);
        want = 0;
      }
    }
    this.buffered -= n;
    this.position += n;
    return out.length === 1 ? out[0]! : Buffer.concat(out, n);
  }

  /** The next `n` bytes, or fewer only if the source ends first. */
  async read(n: number): Promise<Buffer> {
    const have = await this.fill(n);
    return this.shift(Math.min(n, have));
  }

  /** Looks at up to `n` bytes without consuming them. */
  async peek(n: number): Promise<Buffer> {
    const have = await this.fill(n);
    const view = Buffer.concat(this.chunks, have);
    this.chunks = view.length ? [view] : [];
    return view.subarray(0, Math.min(n, have));
  }

  /** Whether the source has ended and nothing is buffered. */
  async atEnd(): Promise<boolean> {
    return (await this.fill(1)) === 0;
  }

  /** Streams the next `n` bytes (fewer if the source ends first) without holding them. */
  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && (await this.fill(1)) === 0) return;
      const chunk = this.shift(Math.min(left, this.chunks[0]!.length));
      left -= chunk.length;
      yield chunk;
    }
  }

  /** Discards the next `n` bytes; returns how many there were. */
  async skip(n: number): Promise<number> {
    let skipped = 0;
    for await (const chunk of this.take(n)) skipped += chunk.length;
    return skipped;
  }

  /** Streams everything left. */
  async *rest(): AsyncGenerator<Buffer> {
    for (;;) {
      if (this.buffered === 0 && (await this.fill(1)) === 0) return;
      yield this.shift(this.chunks[0]!.length);
    }
  }

  /** Ends the source early (closes a file, aborts a download). */
  async close(): Promise<void> {
    this.chunks = [];
    this.buffered = 0;
    if (!this.done) {
      this.done = true;
      await this.it.return?.();
    }
  }
}
