// The Image bench's own parts (not the bench): the images it makes are what it says
// (monolithicSparse VMDKs of random data, the raw file gone), its `curl -T` puts the
// file's bytes in the datastore, and it reads a process's memory from /proc.
import { createHash } from "node:crypto";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { benchSizesMiB, curlUpload, makeSparseVmdk, memoryOf, sha256File } from "../../bench/image.js";
import { VimClient } from "../../provider/vsphere/client.js";
import { DatastorePath, makeDirectory, statFile } from "../../provider/vsphere/datastore.js";
import { datacenterPath, getDatacenter } from "../../provider/vsphere/inventory.js";
import { download, folderUrl } from "../../provider/vsphere/transfer.js";
import { simOptions } from "../support/clients.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";

const exec = promisify(execFile);
let dir: string;
let sim: Vcsim;
let client: VimClient;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "image-bench-test-"));
  sim = await startVcsim({ tls: true });
  client = await VimClient.connect(simOptions(sim));
});
afterAll(async () => {
  await client?.close();
  await sim?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("image bench parts", () => {
  it("makes a monolithicSparse VMDK whose grains hold the random data (incompressible: the file is about the disk's size), and removes the raw file", async () => {
    const vmdk = await makeSparseVmdk(dir, 8);
    const info = JSON.parse((await exec("qemu-img", ["info", "--output=json", vmdk])).stdout) as { format: string; "virtual-size": number; "format-specific"?: { data?: { "create-type"?: string } } };
    expect(info.format).toBe("vmdk");
    expect(info["virtual-size"]).toBe(8 << 20);
    expect(info["format-specific"]?.data?.["create-type"]).toBe("monolithicSparse");
    // Zeros would leave the grains unallocated and the file a few KiB.
    expect((await stat(vmdk)).size).toBeGreaterThan(8 << 20);
    expect(await readdir(dir)).toEqual([basename(vmdk)]);
  });

  it("curl -T puts the file's bytes in the datastore", async () => {
    const vmdk = await makeSparseVmdk(dir, 4);
    const dc = await getDatacenter(client);
    await makeDirectory(client, dc, new DatastorePath("LocalDS_0", "bench-test"));
    const target = new DatastorePath("LocalDS_0", "bench-test/x.vmdk");
    const ms = await curlUpload(vmdk, client.http.origin + folderUrl(await datacenterPath(client, dc), target), { cookie: client.http.cookie, caFile: sim.info.caFile });
    expect(ms).toBeGreaterThan(0);
    expect(await statFile(client, dc, target)).toMatchObject({ size: (await stat(vmdk)).size });
    const h = createHash("sha256");
    for await (const c of (await download(client, dc, target)).stream) h.update(c as Buffer);
    expect(h.digest("hex")).toBe(await sha256File(vmdk));
  });

  it("curl -T without the session cookie is refused (so the bench's curl really is authenticated)", async () => {
    const vmdk = await makeSparseVmdk(dir, 1);
    const dc = await getDatacenter(client);
    const url = client.http.origin + folderUrl(await datacenterPath(client, dc), new DatastorePath("LocalDS_0", "bench-test/y.vmdk"));
    await expect(curlUpload(vmdk, url, { caFile: sim.info.caFile })).rejects.toThrow(/HTTP [45]\d\d/);
  });

  it("reads VmRSS and VmHWM of a process", () => {
    const m = memoryOf(process.pid);
    expect(m.rss).toBeGreaterThan(10 << 20);
    expect(m.hwm).toBeGreaterThanOrEqual(m.rss);
  });

  it("sizes: 1 GiB, 4 GiB more with BENCH_LARGE=1, or BENCH_IMAGE_MIB", () => {
    expect(benchSizesMiB({})).toEqual([1024]);
    expect(benchSizesMiB({ BENCH_LARGE: "1" })).toEqual([1024, 4096]);
    expect(benchSizesMiB({ BENCH_IMAGE_MIB: "64, 256" })).toEqual([64, 256]);
  });
});
