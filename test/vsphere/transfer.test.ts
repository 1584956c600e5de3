// Datastore HTTP transfers against a private simulator: bytes read back equal the
// bytes sent (sha256), progress, names that need encoding, a datacenter in a folder,
// a cut upload, a source that lies about its length, and back-pressure (the source
// is pulled as the socket drains, never read ahead whole).
import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import { DatastorePath, deleteFile, fileExists, makeDirectory, statFile } from "../../provider/vsphere/datastore.js";
import { FileNotFoundFault, UploadIncompleteError, UploadSourceError } from "../../provider/vsphere/errors.js";
import { datacenterPath, getDatacenter, type Datacenter } from "../../provider/vsphere/inventory.js";
import { moRef } from "../../provider/vsphere/schema.js";
import { runTask } from "../../provider/vsphere/task.js";
import { download, folderUrl, headFile, upload, uploadToUrl } from "../../provider/vsphere/transfer.js";
import { simOptions } from "../support/clients.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";
import { rejection } from "../support/rejection.js";
import { sha256Of } from "../support/hash.js";

const MiB = 2 ** 20;

/** `total` random bytes in chunks of varying size; `onChunk` sees each as it is produced. */
async function* randomChunks(total: number, seedHash: ReturnType<typeof createHash>, onChunk?: (produced: number) => void): AsyncGenerator<Buffer> {
  let produced = 0;
  let i = 0;
  while (produced < total) {
    const size = Math.min(total - produced, [65_536, 1, 300_001, 4096, 123_457][i++ % 5]!);
    const chunk = randomBytes(size);
    seedHash.update(chunk);
    produced += size;
    onChunk?.(produced);
    yield chunk;
  }
}

describe("folderUrl", () => {
  it("percent-encodes each name and both query values", () => {
    const p = DatastorePath.parse("[my ds] a b/ü #?&[1].vmdk");
    expect(folderUrl("Folder A/DC 0", p)).toBe("/folder/a%20b/%C3%BC%20%23%3F%26%5B1%5D.vmdk?dcPath=Folder%20A%2FDC%200&dsName=my%20ds");
    expect(folderUrl("DC0", DatastorePath.parse("[ds1] x.iso"))).toBe("/folder/x.iso?dcPath=DC0&dsName=ds1");
  });
});

describe("against the simulator", () => {
  let sim: Vcsim;
  let client: VimClient;
  let dc: Datacenter;
  const at = (path: string) => new DatastorePath("LocalDS_0", path);

  beforeAll(async () => {
    sim = await startVcsim({});
    client = await VimClient.connect(simOptions(sim));
    dc = await getDatacenter(client);
    await makeDirectory(client, dc, at("up"));
  });
  afterAll(async () => {
    await client?.close();
    await sim?.stop();
  });

  it("uploads a few MB from random chunks with sha256 and md5; download gives the same bytes; progress is monotonic and ends at the length", async () => {
    const length = 5 * MiB + 12_345;
    const sent = createHash("sha256");
    const progress: number[] = [];
    const md5 = createHash("md5");
    const result = await upload(
      client,
      dc,
      at("up/random.bin"),
      (async function* () {
        for await (const c of randomChunks(length, sent)) {
          md5.update(c);
          yield c;
        }
      })(),
      { length, checksums: ["sha256", "md5"], onProgress: (n, total) => (expect(total).toBe(length), progress.push(n)) },
    );
    const expected = sent.digest("hex");
    expect(result).toMatchObject({ bytes: length, sha256: expected, md5: md5.digest("hex") });
    expect(result.path.toString()).toBe("[LocalDS_0] up/random.bin");
    expect(progress.length).toBeGreaterThan(5);
    expect(progress.every((n, i) => i === 0 || n >= progress[i - 1]!)).toBe(true);
    expect(progress.at(-1)).toBe(length);

    const d = await download(client, dc, at("up/random.bin"));
    expect(d.length).toBe(length);
    expect(await sha256Of(d.stream)).toEqual({ sha256: expected, bytes: length });
    expect(await statFile(client, dc, at("up/random.bin"))).toMatchObject({ size: length });
    expect(await headFile(client, dc, at("up/random.bin"))).toMatchObject({ size: length });
  });

  it("only sha256 unless md5 is asked for", async () => {
    const r = await upload(client, dc, at("up/small.txt"), [Buffer.from("hello")], { length: 5 });
    expect(r.sha256).toBe(createHash("sha256").update("hello").digest("hex"));
    expect(r.md5).toBeUndefined();
  });

  it("reaches files whose names need encoding (spaces, non-ASCII, #, ?, &, brackets)", async () => {
    const file = at("up/dir with space [x]/ünï #?&[1].bin");
    await makeDirectory(client, dc, file.parent);
    await upload(client, dc, file, [Buffer.from("abc")], { length: 3 });
    expect(await statFile(client, dc, file)).toMatchObject({ name: "ünï #?&[1].bin", size: 3 });
    const d = await download(client, dc, file);
    expect(Buffer.concat(await d.stream.toArray()).toString()).toBe("abc");
  });

  it("a missing file is FileNotFound on download and undefined on HEAD", async () => {
    expect(await rejection(download(client, dc, at("up/none.bin")))).toBeInstanceOf(FileNotFoundFault);
    expect(await headFile(client, dc, at("up/none.bin"))).toBeUndefined();
  });

  it("refuses a source that gives fewer or more bytes than announced", async () => {
    const short = await rejection(upload(client, dc, at("up/short.bin"), [Buffer.alloc(10)], { length: 20 }));
    expect(short).toBeInstanceOf(UploadSourceError);
    expect(short.message).toMatch(/ended after 10 of the 20 bytes/);
    const long = await rejection(upload(client, dc, at("up/long.bin"), [Buffer.alloc(30)], { length: 20 }));
    expect(long).toBeInstanceOf(UploadSourceError);
    expect(long.message).toMatch(/more than the 20 bytes/);
    const failing = await rejection(
      upload(
        client,
        dc,
        at("up/failing.bin"),
        (async function* () {
          yield Buffer.alloc(100);
          throw new Error("disk read failed");
        })(),
        { length: 200 },
      ),
    );
    expect(failing).toBeInstanceOf(UploadSourceError);
    expect(failing.message).toMatch(/reading the source failed after 100 bytes \(disk read failed\)/);
  });

  it("a cut upload is UploadIncomplete (outcome unknown, not resent); the partial file can be deleted and the upload run again", async () => {
    const file = at("up/cut.bin");
    // Scoped to this file's path: an earlier test's aborted upload must not take the rule.
    const rule = await sim.control.addRule({ kind: "cutUpload", afterBytes: 1_000_000, path: "/folder/up/cut.bin" });
    const length = 3 * MiB;
    let pulls = 0;
    const err = await rejection(
      upload(
        client,
        dc,
        file,
        // A source that can be made again: still never resent once bytes went out.
        () =>
          (async function* () {
            pulls++;
            yield* randomChunks(length, createHash("sha256"));
          })(),
        { length },
      ),
    );
    expect((await sim.control.rule(rule.id)).fired).toBe(1);
    expect(pulls).toBe(1);
    expect(err).toBeInstanceOf(UploadIncompleteError);
    const cut = err as UploadIncompleteError;
    expect(cut.code).toBe("UploadIncomplete");
    expect(cut.path).toBe("[LocalDS_0] up/cut.bin");
    expect(cut.message).toMatch(/was cut after \d+ of 3145728 bytes/);
    expect(cut.message).toMatch(/outcome is unknown/);
    expect(cut.bytesSent).toBeGreaterThanOrEqual(1_000_000);
    // The simulator keeps the bytes it got before the cut, as a datastore may.
    expect((await statFile(client, dc, file))?.size).toBeLessThan(length);
    await deleteFile(client, dc, file);
    expect(await fileExists(client, dc, file)).toBe(false);
    const again = await upload(client, dc, file, randomChunks(length, createHash("sha256")), { length });
    expect(again.bytes).toBe(length);
    expect(await statFile(client, dc, file)).toMatchObject({ size: length });
  });

  it("pulls the source as the socket drains: never more than a few MiB ahead of what was sent", async () => {
    const length = 48 * MiB;
    let produced = 0;
    let sentNow = 0;
    let maxAhead = 0;
    await upload(
      client,
      dc,
      at("up/pressure.bin"),
      randomChunks(length, createHash("sha256"), (p) => {
        produced = p;
        maxAhead = Math.max(maxAhead, produced - sentNow);
      }),
      { length, onProgress: (n) => (sentNow = n) },
    );
    expect(produced).toBe(length);
    expect(maxAhead).toBeLessThan(4 * MiB);
    await deleteFile(client, dc, at("up/pressure.bin"));
  });

  it("uploads to a URL whose host is '*' through vCenter's origin, with the session", async () => {
    const r = await uploadToUrl(client, "https://*/folder/up/by-url.bin?dcPath=DC0&dsName=LocalDS_0", [Buffer.from("by url")], { length: 6, kind: "file" });
    expect(r).toMatchObject({ bytes: 6, sha256: createHash("sha256").update("by url").digest("hex") });
    const d = await download(client, dc, at("up/by-url.bin"));
    expect(Buffer.concat(await d.stream.toArray()).toString()).toBe("by url");
  });

  it("streams a disk to another host's URL (an NFC lease) as POST streamVmdk, without vCenter's session cookie", async () => {
    const seen: Array<{ method: string | undefined; url: string | undefined; headers: IncomingHttpHeaders; sha256: string }> = [];
    const server = createServer((req, res) => {
      const h = createHash("sha256");
      req.on("data", (c: Buffer) => h.update(c));
      req.on("end", () => {
        seen.push({ method: req.method, url: req.url, headers: req.headers, sha256: h.digest("hex") });
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const port = (server.address() as AddressInfo).port;
      const length = 2 * MiB;
      const src = createHash("sha256");
      const r = await uploadToUrl(client, `http://127.0.0.1:${port}/nfc/52a1/disk-0.vmdk`, randomChunks(length, src), { length, kind: "disk" });
      const expected = src.digest("hex");
      expect(r.sha256).toBe(expected);
      expect(client.http.cookie).toMatch(/^vmware_soap_session=/);
      expect(seen).toHaveLength(1);
      expect(seen[0]).toMatchObject({ method: "POST", url: "/nfc/52a1/disk-0.vmdk", sha256: expected });
      expect(seen[0]?.headers).toMatchObject({ "content-type": "application/x-vnd.vmware-streamVmdk", "content-length": String(length) });
      expect(seen[0]?.headers.cookie).toBeUndefined();
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it("finds a datacenter inside nested folders by its inventory path (dcPath)", async () => {
    const root = client.serviceContent.rootFolder;
    const outer = moRef.parse(await client.invoke("CreateFolder", root, { name: "Outer F" }));
    const inner = moRef.parse(await client.invoke("CreateFolder", outer, { name: "inner" }));
    await runTask(client, "MoveIntoFolder_Task", inner, { list: [dc.ref] });
    // The path is read once per client (one provider process): a fresh one sees the move.
    const fresh = await VimClient.connect(simOptions(sim));
    try {
      const moved = await getDatacenter(fresh);
      // The look-up's walk read the folders on its way: the path costs no call of its own.
      const before = fresh.stats.roundTrips;
      expect(await datacenterPath(fresh, moved)).toBe(`Outer F/inner/${dc.name}`);
      expect(fresh.stats.roundTrips).toBe(before);
      // A datacenter no look-up found is read up its parents, once.
      const other = await VimClient.connect(simOptions(sim));
      try {
        expect(await datacenterPath(other, moved)).toBe(`Outer F/inner/${dc.name}`);
        expect(other.stats.byMethod.RetrievePropertiesEx).toBe(3); // the datacenter, "inner", "Outer F"
      } finally {
        await other.close();
      }
      const file = at("up/nested.txt");
      await upload(fresh, moved, file, [Buffer.from("nested")], { length: 6 });
      const d = await download(fresh, moved, file);
      expect(Buffer.concat(await d.stream.toArray()).toString()).toBe("nested");
    } finally {
      await fresh.close();
    }
  });
});
