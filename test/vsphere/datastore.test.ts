// Datastore paths, browsing and file operations: paths as pure values, the rest
// against a private simulator (read back through the datastore browser), including
// the answer of a change lost on a reset connection.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import {
  DatastorePath,
  copyFile,
  copyVirtualDisk,
  deleteFile,
  deleteMany,
  deleteVirtualDisk,
  extendVirtualDisk,
  fileExists,
  findDatastore,
  flatExtentOf,
  listFolder,
  makeDirectory,
  moveFile,
  moveVirtualDisk,
  searchMany,
  statFile,
} from "../../provider/vsphere/datastore.js";
import { FileAlreadyExistsFault, FileNotFoundFault, InvalidDatastorePathError, NotFoundError, OutcomeUnknownError } from "../../provider/vsphere/errors.js";
import { getDatacenter, type Datacenter } from "../../provider/vsphere/inventory.js";
import { download, upload } from "../../provider/vsphere/transfer.js";
import { simOptions } from "../support/clients.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";
import { rejection } from "../support/rejection.js";

describe("DatastorePath", () => {
  it("parses and formats, with spaces and brackets in names", () => {
    const p = DatastorePath.parse("[my ds [1]] a folder/b [2].vmdk");
    expect(p.datastore).toBe("my ds [1]");
    expect(p.path).toBe("a folder/b [2].vmdk");
    expect(p.toString()).toBe("[my ds [1]] a folder/b [2].vmdk");
    expect(p.basename).toBe("b [2].vmdk");
    expect(p.parent.toString()).toBe("[my ds [1]] a folder");
    expect(p.parent.parent.toString()).toBe("[my ds [1]]");
    expect(p.parent.parent.parent.toString()).toBe("[my ds [1]]");
  });

  it("reads the datastore's root, joins and normalises slashes", () => {
    const root = DatastorePath.parse("[ds1]");
    expect(root.path).toBe("");
    expect(root.basename).toBe("");
    expect(root.join("_base/", "/img", "img.vmdk").toString()).toBe("[ds1] _base/img/img.vmdk");
    expect(DatastorePath.parse("[ds1] ").toString()).toBe("[ds1]");
    expect(new DatastorePath("ds1", "//a//b/").path).toBe("a/b");
    expect(DatastorePath.parse("[ds1] a/b").equals(new DatastorePath("ds1", "a/b"))).toBe(true);
    expect(flatExtentOf(DatastorePath.parse("[ds1] x/y.vmdk")).toString()).toBe("[ds1] x/y-flat.vmdk");
  });

  it("refuses what is not a datastore path, saying why", () => {
    for (const bad of ["ds1 a/b", "[ds1 a/b", "[] a", "[ds1] a/../b", ""]) {
      expect(() => DatastorePath.parse(bad), bad).toThrow(InvalidDatastorePathError);
    }
    expect(() => DatastorePath.parse("ds1/a")).toThrow(/does not start with "\[datastore\]"/);
  });
});

describe("against the simulator", () => {
  let sim: Vcsim;
  let client: VimClient;
  let dc: Datacenter;
  const ds = "LocalDS_0";
  const at = (path: string) => new DatastorePath(ds, path);
  const put = (path: string, text: string) => upload(client, dc, at(path), [Buffer.from(text)], { length: Buffer.byteLength(text) });

  beforeAll(async () => {
    sim = await startVcsim({});
    client = await VimClient.connect(simOptions(sim));
    dc = await getDatacenter(client);
  });
  afterAll(async () => {
    await client?.close();
    await sim?.stop();
  });

  it("finds a datastore's browser by name, and names the ones there are when it is not there", async () => {
    const h = await findDatastore(client, dc, ds);
    expect(h.ref.type).toBe("Datastore");
    expect(h.browser.type).toBe("HostDatastoreBrowser");
    const before = client.stats.byMethod.RetrievePropertiesEx ?? 0;
    expect((await findDatastore(client, dc, ds)).ref).toEqual(h.ref);
    expect(client.stats.byMethod.RetrievePropertiesEx ?? 0).toBe(before);
    // An unknown name is read again once (it may be new), then refused.
    const err = await rejection(findDatastore(client, dc, "nope"));
    expect(client.stats.byMethod.RetrievePropertiesEx).toBe(before + 1);
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toContain(ds);
  });

  it("searchMany starts every search at once and reads all their outcomes in one round trip; a missing folder fails alone; a slow one is waited for", async () => {
    await makeDirectory(client, dc, at("many/a/deep"));
    await makeDirectory(client, dc, at("many/b"));
    await put("many/a/x.vmdk", "xx");
    await put("many/a/deep/y.iso", "yyy");
    await put("many/b/z.txt", "z");
    const before = { ...client.stats.byMethod };
    const rounds = client.stats.roundTrips;
    const [a, b, missing, root] = await searchMany(client, dc, [
      { folder: at("many/a"), recursive: true, details: true },
      { folder: at("many/b"), matchPattern: ["*.txt"] },
      { folder: at("many/none") },
      { folder: at("many"), recursive: true },
    ]);
    const by = (m: string) => (client.stats.byMethod[m] ?? 0) - (before[m] ?? 0);
    expect(by("SearchDatastoreSubFolders_Task")).toBe(2);
    expect(by("SearchDatastore_Task")).toBe(2);
    expect(by("RetrievePropertiesEx")).toBe(1);
    expect(client.stats.roundTrips - rounds).toBe(5);

    expect(a?.status).toBe("fulfilled");
    const tree = a?.status === "fulfilled" ? a.value : new Map();
    expect([...tree.keys()].sort()).toEqual([`[${ds}] many/a`, `[${ds}] many/a/deep`]);
    expect(tree.get(`[${ds}] many/a/deep`)).toMatchObject([{ name: "y.iso", folder: false, size: 3 }]);
    expect(b?.status === "fulfilled" && b.value.get(`[${ds}] many/b`)?.map((e) => e.name)).toEqual(["z.txt"]);
    expect(missing?.status).toBe("rejected");
    expect(missing?.status === "rejected" && missing.reason).toBeInstanceOf(FileNotFoundFault);
    expect(root?.status === "fulfilled" && [...root.value.keys()].length).toBe(4);

    // A search still running at the one look is waited for on its own; the others are not held up.
    await sim.control.addRule({ kind: "taskDelay", method: "SearchDatastore_Task", args: { datastorePath: at("many/b").toString() }, ms: 400 });
    const waits = client.stats.byMethod.WaitForUpdatesEx ?? 0;
    const [late, quick] = await searchMany(client, dc, [{ folder: at("many/b") }, { folder: at("many/a") }]);
    expect(late?.status === "fulfilled" && late.value.get(`[${ds}] many/b`)?.map((e) => e.name)).toEqual(["z.txt"]);
    expect(quick?.status === "fulfilled" && quick.value.get(`[${ds}] many/a`)?.map((e) => e.name).sort()).toEqual(["deep", "x.vmdk"]);
    expect(client.stats.byMethod.WaitForUpdatesEx ?? 0).toBeGreaterThan(waits);
    expect(await searchMany(client, dc, [])).toEqual([]);
  });

  it("makes folders with their parents; an existing one is fine", async () => {
    expect(await fileExists(client, dc, at("mk/a b/c"))).toBe(false);
    await makeDirectory(client, dc, at("mk/a b/c"));
    expect(await fileExists(client, dc, at("mk/a b/c"))).toBe(true);
    await makeDirectory(client, dc, at("mk/a b"));
    await makeDirectory(client, dc, at("mk/a b"), { createParents: false });
    expect(await rejection(makeDirectory(client, dc, at("mk/x/y"), { createParents: false }))).toBeInstanceOf(FileNotFoundFault);
    const entries = await listFolder(client, dc, at("mk"));
    expect(entries.map((e) => [e.name, e.folder])).toEqual([["a b", true]]);
  });

  it("lists with details and patterns; a missing folder is FileNotFound", async () => {
    await makeDirectory(client, dc, at("list"));
    await put("list/one.vmdk", "1");
    await put("list/two.iso", "22");
    await makeDirectory(client, dc, at("list/sub"));
    const all = await listFolder(client, dc, at("list"), { details: true });
    const byName = new Map(all.map((e) => [e.name, e]));
    expect([...byName.keys()].sort()).toEqual(["one.vmdk", "sub", "two.iso"]);
    expect(byName.get("two.iso")).toMatchObject({ folder: false, size: 2 });
    expect(byName.get("sub")?.folder).toBe(true);
    expect(byName.get("one.vmdk")?.modified).toBeInstanceOf(Date);
    expect(byName.get("one.vmdk")?.path.toString()).toBe(`[${ds}] list/one.vmdk`);
    const vmdks = await listFolder(client, dc, at("list"), { matchPattern: ["*.vmdk"] });
    expect(vmdks.map((e) => e.name)).toEqual(["one.vmdk"]);
    expect(vmdks[0]?.size).toBeUndefined();
    expect(await rejection(listFolder(client, dc, at("no-such-folder")))).toBeInstanceOf(FileNotFoundFault);
  });

  it("stats a file by its exact name, brackets included, as the cache-hit test", async () => {
    await makeDirectory(client, dc, at("stat [x]"));
    await put("stat [x]/img [1].vmdk", "abc");
    await put("stat [x]/img 1.vmdk", "abcd");
    expect(await statFile(client, dc, at("stat [x]/img [1].vmdk"))).toMatchObject({ size: 3, folder: false });
    expect(await statFile(client, dc, at("stat [x]/img 1.vmdk"))).toMatchObject({ size: 4 });
    expect(await statFile(client, dc, at("stat [x]/img"))).toBeUndefined();
    expect(await statFile(client, dc, at("no-folder/img.vmdk"))).toBeUndefined();
    expect(await fileExists(client, dc, `[${ds}]`)).toBe(true);
  });

  it("moves, copies and deletes files and folders", async () => {
    await makeDirectory(client, dc, at("ops/src"));
    await put("ops/src/f.bin", "hello");
    await moveFile(client, dc, at("ops/src"), at("ops/moved"));
    expect(await fileExists(client, dc, at("ops/src"))).toBe(false);
    expect(await statFile(client, dc, at("ops/moved/f.bin"))).toMatchObject({ size: 5 });

    await copyFile(client, dc, at("ops/moved/f.bin"), at("ops/copy.bin"));
    expect(await statFile(client, dc, at("ops/copy.bin"))).toMatchObject({ size: 5 });
    expect(await rejection(copyFile(client, dc, at("ops/moved/f.bin"), at("ops/copy.bin")))).toBeInstanceOf(FileAlreadyExistsFault);
    expect(await rejection(moveFile(client, dc, at("ops/copy.bin"), at("ops/moved/f.bin")))).toBeInstanceOf(FileAlreadyExistsFault);
    await moveFile(client, dc, at("ops/copy.bin"), at("ops/moved/f.bin"), { force: true });
    expect(await fileExists(client, dc, at("ops/copy.bin"))).toBe(false);

    expect(await deleteFile(client, dc, at("ops/moved"))).toBe(true);
    expect(await fileExists(client, dc, at("ops/moved"))).toBe(false);
    expect(await deleteFile(client, dc, at("ops/moved"))).toBe(false);
    expect(await rejection(deleteFile(client, dc, at("ops/moved"), { mustExist: true }))).toBeInstanceOf(FileNotFoundFault);
  });

  it("copies, moves and deletes a flat virtual disk with its extent", async () => {
    await makeDirectory(client, dc, at("vd"));
    await put("vd/a.vmdk", '# Disk DescriptorFile\nversion=1\ncreateType="vmfs"\nRW 8 VMFS "a-flat.vmdk"\n');
    await put("vd/a-flat.vmdk", "x".repeat(4096));
    await copyVirtualDisk(client, dc, at("vd/a.vmdk"), at("vd/b.vmdk"));
    expect(await statFile(client, dc, at("vd/b-flat.vmdk"))).toMatchObject({ size: 4096 });
    await moveVirtualDisk(client, dc, at("vd/b.vmdk"), at("vd/c.vmdk"));
    expect(await fileExists(client, dc, at("vd/b.vmdk"))).toBe(false);
    expect(await fileExists(client, dc, at("vd/c-flat.vmdk"))).toBe(true);
    expect(await deleteVirtualDisk(client, dc, at("vd/c.vmdk"))).toBe(true);
    expect((await listFolder(client, dc, at("vd"))).map((e) => e.name).sort()).toEqual(["a-flat.vmdk", "a.vmdk"]);
    expect(await deleteVirtualDisk(client, dc, at("vd/c.vmdk"))).toBe(false);
  });

  /** The capacity a flat disk's descriptor gives (its one extent's sectors / 2), read over HTTP. */
  async function descriptorKb(path: string): Promise<number | undefined> {
    const d = await download(client, dc, at(path));
    const text = Buffer.concat(await d.stream.toArray()).toString();
    const m = /^RW (\d+) /m.exec(text);
    return m ? Number(m[1]) / 2 : undefined;
  }

  it("extends a flat virtual disk", async () => {
    await makeDirectory(client, dc, at("ext"));
    await put("ext/e.vmdk", '# Disk DescriptorFile\nversion=1\ncreateType="vmfs"\nRW 8 VMFS "e-flat.vmdk"\n');
    await put("ext/e-flat.vmdk", "z".repeat(4096));
    await extendVirtualDisk(client, dc, at("ext/e.vmdk"), 64);
    expect(await statFile(client, dc, at("ext/e-flat.vmdk"))).toMatchObject({ size: 65536 });
    expect(await descriptorKb("ext/e.vmdk")).toBe(64);
  });

  describe("a lost answer is settled by looking at the datastore", () => {
    it("ExtendVirtualDisk_Task: the capacity read back is the one asked for, so it was extended; without a way to read it, the outcome is unknown", async () => {
      await makeDirectory(client, dc, at("lost/ext"));
      await put("lost/ext/d.vmdk", '# Disk DescriptorFile\nversion=1\ncreateType="vmfs"\nRW 8 VMFS "d-flat.vmdk"\n');
      await put("lost/ext/d-flat.vmdk", "z".repeat(4096));
      await sim.control.addRule({ kind: "reset", method: "ExtendVirtualDisk_Task", phase: "after" });
      await extendVirtualDisk(client, dc, at("lost/ext/d.vmdk"), 32, { capacityKb: () => descriptorKb("lost/ext/d.vmdk") });
      expect(await descriptorKb("lost/ext/d.vmdk")).toBe(32);
      await sim.control.addRule({ kind: "reset", method: "ExtendVirtualDisk_Task", phase: "after" });
      expect(await rejection(extendVirtualDisk(client, dc, at("lost/ext/d.vmdk"), 48))).toBeInstanceOf(OutcomeUnknownError);
    });

    it("MakeDirectory: the folder is there, so it was made (no OutcomeUnknown, no replay)", async () => {
      const rule = await sim.control.addRule({ kind: "reset", method: "MakeDirectory", phase: "after" });
      const before = client.stats.byMethod.MakeDirectory ?? 0;
      await makeDirectory(client, dc, at("lost/mk"));
      expect(await fileExists(client, dc, at("lost/mk"))).toBe(true);
      expect((await sim.control.rule(rule.id)).fired).toBe(1);
      expect(client.stats.byMethod.MakeDirectory).toBe(before + 1);
    });

    it("MakeDirectory refused before it ran: not made, so replayed", async () => {
      const rule = await sim.control.addRule({ kind: "reset", method: "MakeDirectory", phase: "before" });
      const before = client.stats.byMethod.MakeDirectory ?? 0;
      await makeDirectory(client, dc, at("lost/mk2"));
      expect((await sim.control.rule(rule.id)).fired).toBe(1);
      expect(client.stats.byMethod.MakeDirectory).toBe(before + 2);
      expect(await fileExists(client, dc, at("lost/mk2"))).toBe(true);
    });

    it("MoveDatastoreFile_Task: source gone and destination there, so it moved", async () => {
      await makeDirectory(client, dc, at("lost/mv"));
      await sim.control.addRule({ kind: "reset", method: "MoveDatastoreFile_Task", phase: "after" });
      await moveFile(client, dc, at("lost/mv"), at("lost/mv2"));
      expect(await fileExists(client, dc, at("lost/mv2"))).toBe(true);
      expect(await fileExists(client, dc, at("lost/mv"))).toBe(false);
    });

    it("DeleteDatastoreFile_Task: gone, so it was deleted", async () => {
      await makeDirectory(client, dc, at("lost/del"));
      await sim.control.addRule({ kind: "reset", method: "DeleteDatastoreFile_Task", phase: "after" });
      expect(await deleteFile(client, dc, at("lost/del"))).toBe(true);
      expect(await fileExists(client, dc, at("lost/del"))).toBe(false);
    });

    it("deleteMany: a delete whose answer was lost is found done, the others waited for in one read; a missing file is false", async () => {
      for (const d of ["a", "b", "c"]) await makeDirectory(client, dc, at(`lost/many/${d}`));
      await sim.control.addRule({ kind: "reset", method: "DeleteDatastoreFile_Task", phase: "after", args: { name: at("lost/many/b").toString() } });
      const searches = client.stats.byMethod.SearchDatastore_Task ?? 0;
      const outcomes = await deleteMany(client, dc, [at("lost/many/a"), at("lost/many/b"), at("lost/many/c"), at("lost/many/none")]);
      // The lost answer was looked into (whether b is still there): the reset did fire.
      expect((client.stats.byMethod.SearchDatastore_Task ?? 0) - searches).toBe(1);
      expect(outcomes).toEqual([
        { status: "fulfilled", value: true },
        { status: "fulfilled", value: true },
        { status: "fulfilled", value: true },
        { status: "fulfilled", value: false },
      ]);
      for (const d of ["a", "b", "c"]) expect(await fileExists(client, dc, at(`lost/many/${d}`))).toBe(false);
    });

    it("CopyDatastoreFile_Task: a destination that exists may be partial, so the outcome is unknown and says what to do", async () => {
      await makeDirectory(client, dc, at("lost/cp"));
      await put("lost/cp/f", "data");
      await sim.control.addRule({ kind: "reset", method: "CopyDatastoreFile_Task", phase: "after" });
      const err = await rejection(copyFile(client, dc, at("lost/cp/f"), at("lost/cp/g")));
      expect(err).toBeInstanceOf(OutcomeUnknownError);
      expect(err.message).toMatch(/may be incomplete: delete it and copy again/);
    });

    it("CopyDatastoreFile_Task refused before it ran: the destination is missing, so it is replayed", async () => {
      await makeDirectory(client, dc, at("lost/cp2"));
      await put("lost/cp2/f", "data");
      await sim.control.addRule({ kind: "reset", method: "CopyDatastoreFile_Task", phase: "before" });
      await copyFile(client, dc, at("lost/cp2/f"), at("lost/cp2/g"));
      expect(await statFile(client, dc, at("lost/cp2/g"))).toMatchObject({ size: 4 });
    });
  });
});
