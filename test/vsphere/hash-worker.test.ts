// Hashing on a worker thread through the shared ring: the digests are the bytes' digests
// whatever the chunking (chunks larger than the ring, chunks across its end), a worker is
// kept for the next job and given back after an abort, and small jobs or jobs beyond the
// worker limit hash inline. (On two cores the default limit is 0: these tests set 1.)
import { createHash, randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import { DatastorePath, makeDirectory } from "../../provider/vsphere/datastore.js";
import { UploadSourceError } from "../../provider/vsphere/errors.js";
import { HashWorkerError, hashWorkerStats, hasherFor, setHashWorkerLimit, type Hasher } from "../../provider/vsphere/hash-worker.js";
import { getDatacenter } from "../../provider/vsphere/inventory.js";
import { download, upload } from "../../provider/vsphere/transfer.js";
import { simOptions } from "../support/clients.js";
import { rejection } from "../support/rejection.js";
import { startVcsim } from "../vcsim/index.js";

let limit: number;
beforeAll(() => {
  limit = setHashWorkerLimit(1);
});
afterAll(() => {
  setHashWorkerLimit(limit);
});

const MiB = 2 ** 20;

async function feed<A extends string>(h: Hasher<A>, chunks: Uint8Array[]): Promise<void> {
  for (const c of chunks) {
    const wait = h.update(c);
    if (wait) await wait;
  }
}

function expected(chunks: Uint8Array[], algorithm: string): string {
  const h = createHash(algorithm);
  for (const c of chunks) h.update(c);
  return h.digest("hex");
}

/** Chunks of the given sizes, random bytes (a fresh buffer each, as a stream gives them). */
const chunksOf = (sizes: number[]) => sizes.map((n) => randomBytes(n));

describe("hasherFor off the main thread", () => {
  it("gives the digests of the bytes for chunks of every size: small, odd, across the ring's end, larger than the ring", async () => {
    const chunks = chunksOf([1, 7, 65_536, MiB - 3, 3 * MiB + 11, 9 * MiB, 17, 2 * MiB]);
    const total = chunks.reduce((n, c) => n + c.byteLength, 0);
    const h = hasherFor(["sha256", "md5"] as const, total, 0);
    expect(hashWorkerStats().busy).toBe(1);
    await feed(h, chunks);
    expect(await h.finish()).toEqual({ sha256: expected(chunks, "sha256"), md5: expected(chunks, "md5") });
  });

  it("gives the digests when many odd-sized chunks wrap around the ring many times", async () => {
    const chunks = chunksOf(Array.from({ length: 120 }, (_, i) => 333_333 + ((i * 7919) % 65_537)));
    const total = chunks.reduce((n, c) => n + c.byteLength, 0);
    const h = hasherFor(["sha256"] as const, total, 0);
    await feed(h, chunks);
    expect((await h.finish()).sha256).toBe(expected(chunks, "sha256"));
  });

  it("does not depend on the caller's buffer after update returns (the bytes were copied)", async () => {
    const chunk = randomBytes(MiB);
    const copy = Buffer.from(chunk);
    const h = hasherFor(["sha256"] as const, 3 * MiB, 0);
    for (let i = 0; i < 3; i++) {
      const wait = h.update(chunk);
      if (wait) await wait;
      chunk.fill(i + 1); // the stream reuses or frees its buffer once it was sent
    }
    const want = createHash("sha256").update(copy).update(Buffer.alloc(MiB, 1)).update(Buffer.alloc(MiB, 2)).digest("hex");
    expect((await h.finish()).sha256).toBe(want);
  });

  it("keeps the worker for the next job, and an aborted job gives it back", async () => {
    const first = hasherFor(["sha256"] as const, MiB, 0);
    await feed(first, chunksOf([MiB]));
    await first.finish();
    const started = hashWorkerStats().started;
    const aborted = hasherFor(["sha256"] as const, 5 * MiB, 0);
    await feed(aborted, chunksOf([2 * MiB, MiB]));
    await aborted.abort();
    expect(hashWorkerStats().busy).toBe(0);
    expect(() => aborted.update(new Uint8Array(1))).toThrow(/after finish or abort/);
    const chunks = chunksOf([5 * MiB]);
    const next = hasherFor(["sha256"] as const, 5 * MiB, 0);
    expect(hashWorkerStats()).toMatchObject({ started, busy: 1 });
    await feed(next, chunks);
    // The aborted job's bytes are not in the next one's digest.
    expect((await next.finish()).sha256).toBe(expected(chunks, "sha256"));
    expect(hashWorkerStats()).toMatchObject({ started, busy: 0 });
  });

  it("a worker that dies fails its job (no hang), leaves the pool, and the next job gets a new one", async () => {
    // An algorithm OpenSSL does not know throws inside the worker, which then exits.
    const doomed = hasherFor(["no-such-hash"] as const, MiB, 0);
    const during = hashWorkerStats();
    expect(during.busy).toBe(1);
    doomed.update(randomBytes(1024));
    await expect(doomed.finish()).rejects.toBeInstanceOf(HashWorkerError);
    expect(hashWorkerStats()).toMatchObject({ busy: 0, running: during.running - 1 });
    const chunks = chunksOf([2 * MiB]);
    const next = hasherFor(["sha256"] as const, 2 * MiB, 0);
    await feed(next, chunks);
    expect((await next.finish()).sha256).toBe(expected(chunks, "sha256"));
    expect(hashWorkerStats().started).toBe(during.started + 1);
  });

  it("hashes zero bytes", async () => {
    const h = hasherFor(["sha256"] as const, 0, 0);
    expect((await h.finish()).sha256).toBe(createHash("sha256").digest("hex"));
  });

  it("hashes inline below the size that pays for a worker, beyond the worker limit, and with a limit of 0", async () => {
    const small = hasherFor(["sha256"] as const, MiB);
    expect(hashWorkerStats().busy).toBe(0);
    await feed(small, chunksOf([MiB]));
    await small.finish();

    const jobs = [0, 1].map(() => hasherFor(["sha256"] as const, MiB, 0));
    expect(hashWorkerStats().busy).toBe(1);
    const chunks = chunksOf([MiB]);
    await Promise.all(jobs.map((j) => feed(j, chunks)));
    const digests = await Promise.all(jobs.map((j) => j.finish()));
    expect(digests.map((d) => d.sha256)).toEqual(jobs.map(() => expected(chunks, "sha256")));
    expect(hashWorkerStats().busy).toBe(0);

    const before = setHashWorkerLimit(0);
    try {
      const inline = hasherFor(["sha256"] as const, 64 * MiB, 0);
      expect(hashWorkerStats().busy).toBe(0);
      await feed(inline, chunks);
      expect((await inline.finish()).sha256).toBe(expected(chunks, "sha256"));
    } finally {
      setHashWorkerLimit(before);
    }
  });
});

describe("upload() hashing on a worker", () => {
  it("gives the digests of the bytes sent (sha256 and md5), and a source that fails midway gives the worker back", async () => {
    const sim = await startVcsim({});
    const client = await VimClient.connect(simOptions(sim));
    try {
      const dc = await getDatacenter(client);
      await makeDirectory(client, dc, new DatastorePath("LocalDS_0", "hw"));
      const chunks = chunksOf([3 * MiB + 5, 65_536, 7 * MiB, 1, 9 * MiB, 4 * MiB - 9]);
      const length = chunks.reduce((n, c) => n + c.byteLength, 0);
      const started = hashWorkerStats().started;
      const r = await upload(client, dc, new DatastorePath("LocalDS_0", "hw/a.bin"), chunks, { length, checksums: ["sha256", "md5"] });
      expect(r).toMatchObject({ bytes: length, sha256: expected(chunks, "sha256"), md5: expected(chunks, "md5") });
      // On a worker: one was started (or an idle one taken) and is free again.
      expect(hashWorkerStats()).toMatchObject({ busy: 0 });
      expect(hashWorkerStats().started + hashWorkerStats().running).toBeGreaterThan(started);
      const h = createHash("sha256");
      for await (const c of (await download(client, dc, new DatastorePath("LocalDS_0", "hw/a.bin"))).stream) h.update(c as Buffer);
      expect(h.digest("hex")).toBe(r.sha256);

      const failing = await rejection(
        upload(
          client,
          dc,
          new DatastorePath("LocalDS_0", "hw/b.bin"),
          (async function* () {
            yield randomBytes(5 * MiB);
            throw new Error("disk read failed");
          })(),
          { length: 32 * MiB },
        ),
      );
      expect(failing).toBeInstanceOf(UploadSourceError);
      expect(hashWorkerStats().busy).toBe(0);
    } finally {
      await client.close();
      await sim.stop();
    }
  });
});
