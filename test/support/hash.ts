// The sha256 (hex) and length of what a stream yields, for tests that compare bytes
// read back with bytes sent.
import { createHash } from "node:crypto";

export async function sha256Of(stream: AsyncIterable<Uint8Array | string>): Promise<{ sha256: string; bytes: number }> {
  const h = createHash("sha256");
  let bytes = 0;
  for await (const c of stream) {
    h.update(c);
    bytes += typeof c === "string" ? Buffer.byteLength(c) : c.byteLength;
  }
  return { sha256: h.digest("hex"), bytes };
}
