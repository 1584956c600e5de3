// An instance's root disk made ready against the simulator: the image copied into the
// chosen datastore's cache, a linked clone's base (sized when the root disk is larger),
// a full copy grown in the VM's folder, and what undo removes.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import { fileExists, listFolder, makeDirectory, type DatastorePath } from "../../provider/vsphere/datastore.js";
import { cacheLocation } from "../../provider/vsphere/image-cache.js";
import { getDatacenter, type Datacenter } from "../../provider/vsphere/inventory.js";
import { prepareRootDisk, type RootDiskRequest } from "../../provider/vsphere/root-disk.js";
import { simOptions } from "../support/clients.js";
import { rejection } from "../support/rejection.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";
import { createDisk } from "../support/vms.js";

const MiB = 2 ** 20;
const GiB = 2 ** 30;
const PREFIX = "rd";
let sim: Vcsim;
let client: VimClient;
let dc: Datacenter;
let DS0: string;
let DS1: string;

beforeAll(async () => {
  sim = await startVcsim({ clusters: 1, hosts: 1, datastores: 2 });
  client = await VimClient.connect(simOptions(sim));
  dc = await getDatacenter(client);
  [DS0, DS1] = sim.info.inventory.datacenters[0]!.datastores.filter((d) => d.startsWith("LocalDS_")) as [string, string];
  // A cached image on DS0: a flat disk of 8 MiB at the cache's place.
  const loc = cacheLocation(DS0, PREFIX, "img", "disk");
  await makeDirectory(client, dc, loc.folder, { createParents: true });
  await createDisk(client, dc, loc.disk.toString(), 8 * 1024);
});
afterAll(async () => {
  await client?.close();
  await sim?.stop();
});

const request = (over: Partial<RootDiskRequest>): RootDiskRequest => ({
  datacenter: dc,
  datastore: DS0,
  cachedOn: DS0,
  cachePrefix: PREFIX,
  imageId: "img",
  capacityBytes: 8 * MiB,
  linkedClone: true,
  vmName: "vm",
  ...over,
});

async function sizes(folder: DatastorePath): Promise<Record<string, number | undefined>> {
  return Object.fromEntries((await listFolder(client, dc, folder, { details: true })).map((e) => [e.name, e.size]));
}

describe("prepareRootDisk", () => {
  it("a linked clone of the image's size: the cached disk itself, nothing made", async () => {
    const r = await prepareRootDisk(client, request({}));
    expect(r.disk).toEqual({ kind: "linkedClone", base: cacheLocation(DS0, PREFIX, "img", "disk").disk, capacityKb: 8 * 1024 });
  });

  it("on another datastore: the image copied into its cache first; a larger root disk: a sized base there", async () => {
    const r = await prepareRootDisk(client, request({ datastore: DS1, rootGb: 1 }));
    const folder = cacheLocation(DS1, PREFIX, "img", "disk").folder;
    expect(r.disk).toEqual({ kind: "linkedClone", base: folder.join("img.1.vmdk"), capacityKb: 1024 * 1024 });
    const files = await sizes(folder);
    expect(files["img-flat.vmdk"]).toBe(8 * MiB);
    expect(files["img.1-flat.vmdk"]).toBe(GiB);
  });

  it("a full copy: the base copied into the VM's folder and grown; undo removes that folder only", async () => {
    const r = await prepareRootDisk(client, request({ linkedClone: false, rootGb: 1, vmName: "full-vm" }));
    expect(r.disk.kind).toBe("copy");
    const folder = (r.disk as { fileName: DatastorePath }).fileName.parent;
    expect(folder.toString()).toBe(`[${DS0}] full-vm`);
    expect((await sizes(folder))["full-vm-flat.vmdk"]).toBe(GiB);
    await r.undo();
    expect(await fileExists(client, dc, folder)).toBe(false);
    expect(await fileExists(client, dc, r.base)).toBe(true);
  });

  it("refuses a root disk smaller than the image, before touching anything", async () => {
    const err = await rejection(prepareRootDisk(client, request({ rootGb: 1, capacityBytes: 2 * GiB })));
    expect(err.message).toMatch(/smaller than image img/);
  });
});
