// The simulator's datastore behaviour, corrected to vCenter's where the Image resource
// depends on it: HTTP file access needs a session.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RawSoap, asArray, toMoRef, type Parsed } from "../support/raw-soap.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";
import { DatastoreHarness } from "./datastore-support.js";

let sim: Vcsim;
let ds: DatastoreHarness;

beforeAll(async () => {
  sim = await startVcsim({ clusters: 1, hosts: 1 });
  ds = await DatastoreHarness.open(sim);
});
afterAll(() => sim?.stop());

function fileNames(result: Parsed): string[] {
  return asArray(result.file as Parsed | Parsed[] | undefined)
    .map((f) => String(f.path))
    .sort();
}

describe("datastore HTTP access (/folder)", () => {
  it("answers 401 to a GET, PUT or DELETE without a session cookie, and stores nothing", async () => {
    const name = `noauth-${Date.now()}.bin`;
    expect((await ds.http("PUT", name, Buffer.from("x"), null)).status).toBe(401);
    expect((await ds.http("GET", name, undefined, null)).status).toBe(401);
    expect((await ds.http("DELETE", name, undefined, null)).status).toBe(401);
    expect((await ds.http("GET", name)).status).toBe(404);
  });

  it("answers 401 to the cookie of a session that logged out", async () => {
    const gone = await ds.client();
    const name = `expired-${Date.now()}.bin`;
    expect((await ds.http("PUT", name, Buffer.from("abc"), gone.cookie)).status).toBe(200);
    await gone.call("Logout", toMoRef(ds.sc.sessionManager));
    expect((await ds.http("GET", name, undefined, gone.cookie)).status).toBe(401);
    expect((await ds.http("PUT", name, Buffer.from("x"), gone.cookie)).status).toBe(401);
    expect((await ds.http("GET", name)).bytes.toString()).toBe("abc");
  });

  it("a PUT into a folder that does not exist makes the folder, as vCenter's does", async () => {
    const dir = `newdir-${Date.now()}`;
    expect((await ds.http("GET", `${dir}/sub/a.bin`)).status).toBe(404);
    expect((await ds.http("PUT", `${dir}/sub/a.bin`, Buffer.from("hello"))).status).toBe(200);
    expect((await ds.http("GET", `${dir}/sub/a.bin`)).bytes.toString()).toBe("hello");
  });

  it("DELETE removes a file (404 when there is none) and refuses a folder", async () => {
    const dir = `del-${Date.now()}`;
    await ds.mkdir(dir);
    expect((await ds.http("PUT", `${dir}/f.bin`, Buffer.from("x"))).status).toBe(200);
    expect((await ds.http("DELETE", `${dir}/f.bin`)).status).toBe(204);
    expect((await ds.http("GET", `${dir}/f.bin`)).status).toBe(404);
    expect((await ds.http("DELETE", `${dir}/f.bin`)).status).toBe(404);
    expect((await ds.http("DELETE", dir)).status).toBe(403);
  });

  it("cutUpload still cuts an authenticated upload into an existing folder", async () => {
    const dir = `cut-${Date.now()}`;
    await ds.mkdir(dir);
    const rule = await sim.control.addRule({ kind: "cutUpload", afterBytes: 4096 });
    const err = await ds.http("PUT", `${dir}/p.bin`, Buffer.alloc(1 << 20, 1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((await ds.http("GET", `${dir}/p.bin`)).bytes.length).toBe(4096);
    expect(await sim.control.rule(rule.id)).toMatchObject({ fired: 1 });
  });
});

describe("datastore browser", () => {
  let dir: string;
  beforeAll(async () => {
    dir = `browse-${Date.now()}`;
    await ds.mkdir(`${dir}/sub`);
    await ds.http("PUT", `${dir}/a.vmdk`, Buffer.from("descriptor"));
    await ds.http("PUT", `${dir}/a-flat.vmdk`, Buffer.alloc(4096));
    await ds.http("PUT", `${dir}/sub/c.iso`, Buffer.from("iso"));
  });

  it("SearchDatastore_Task without a searchSpec lists every file and folder, by path only", async () => {
    const info = await ds.runTask("SearchDatastore_Task", ds.browser, `<datastorePath>[LocalDS_0] ${dir}</datastorePath>`);
    expect(info.state).toBe("success");
    expect(info.result.folderPath).toBe(`[LocalDS_0] ${dir}`);
    expect(fileNames(info.result)).toEqual(["a-flat.vmdk", "a.vmdk", "sub"]);
    const files = asArray(info.result.file as Parsed[]);
    expect(files.find((f) => f.path === "sub")!["@_type"]).toBe("FolderFileInfo");
    expect(files.every((f) => f.fileSize === undefined && f.modification === undefined)).toBe(true);
  });

  it("SearchDatastoreSubFolders_Task without a searchSpec lists each folder's files", async () => {
    const info = await ds.runTask("SearchDatastoreSubFolders_Task", ds.browser, `<datastorePath>[LocalDS_0] ${dir}</datastorePath>`);
    expect(info.state).toBe("success");
    const results = asArray(info.result.HostDatastoreBrowserSearchResults as Parsed | Parsed[]);
    const byFolder = Object.fromEntries(results.map((r) => [String(r.folderPath), fileNames(r)]));
    expect(byFolder[`[LocalDS_0] ${dir}`]).toEqual(["a-flat.vmdk", "a.vmdk", "sub"]);
    expect(byFolder[`[LocalDS_0] ${dir}/sub`]).toEqual(["c.iso"]);
  });

  it("a searchSpec without matchPattern matches every file, with the details it asks for", async () => {
    const info = await ds.runTask(
      "SearchDatastore_Task",
      ds.browser,
      `<datastorePath>[LocalDS_0] ${dir}</datastorePath><searchSpec><details><fileType>false</fileType><fileSize>true</fileSize>` +
        `<modification>false</modification><fileOwner>false</fileOwner></details></searchSpec>`,
    );
    expect(fileNames(info.result)).toEqual(["a-flat.vmdk", "a.vmdk", "sub"]);
    const flat = asArray(info.result.file as Parsed[]).find((f) => f.path === "a-flat.vmdk")!;
    expect(Number(flat.fileSize)).toBe(4096);
  });

  it("a searchSpec with a matchPattern is the simulator's own search, unchanged", async () => {
    const info = await ds.runTask(
      "SearchDatastore_Task",
      ds.browser,
      `<datastorePath>[LocalDS_0] ${dir}</datastorePath><searchSpec><matchPattern>*.vmdk</matchPattern></searchSpec>`,
    );
    expect(fileNames(info.result)).toEqual(["a-flat.vmdk", "a.vmdk"]);
  });

  it("a folder that does not exist is FileNotFound", async () => {
    const info = await ds.runTask("SearchDatastore_Task", ds.browser, `<datastorePath>[LocalDS_0] ${dir}-none</datastorePath>`);
    expect(info.state).toBe("error");
    expect(info.error.fault["@_type"]).toBe("FileNotFound");
  });
});

describe("virtual disks", () => {
  it("CreateVirtualDisk_Task writes a descriptor and a -flat extent of the capacity asked", async () => {
    const dir = `create-${Date.now()}`;
    await ds.mkdir(dir);
    expect((await ds.createDisk(`${dir}/d.vmdk`, 1024)).state).toBe("success");
    const text = (await ds.http("GET", `${dir}/d.vmdk`)).bytes.toString();
    expect(text).toContain('createType="vmfs"');
    expect(text).toContain('RW 2048 VMFS "d-flat.vmdk"');
    expect(text).toContain('ddb.adapterType = "lsilogic"');
    expect(text).toContain('ddb.thinProvisioned = "1"');
    expect((await ds.http("GET", `${dir}/d-flat.vmdk`)).bytes.length).toBe(1024 * 1024);

    const again = await ds.createDisk(`${dir}/d.vmdk`, 1024);
    expect(again.error.fault["@_type"]).toBe("FileAlreadyExists");
    const ide = await ds.createDisk(`${dir}/i.vmdk`, 2048, "preallocated", "ide");
    expect(ide.state).toBe("success");
    const ideText = (await ds.http("GET", `${dir}/i.vmdk`)).bytes.toString();
    expect(ideText).toContain('ddb.adapterType = "ide"');
    expect(ideText).not.toContain("thinProvisioned");
  });

  it("ExtendVirtualDisk_Task grows the extent and the descriptor, keeps the data, refuses to shrink", async () => {
    const dir = `extend-${Date.now()}`;
    await ds.mkdir(dir);
    await ds.createDisk(`${dir}/e.vmdk`, 1024);
    const data = Buffer.alloc(1024 * 1024, 0);
    data.write("first sector", 0);
    data.write("last sector", data.length - 512);
    expect((await ds.http("PUT", `${dir}/e-flat.vmdk`, data)).status).toBe(200);

    const vdm = ds.vdm;
    const grown = await ds.runTask("ExtendVirtualDisk_Task", vdm, `${ds.diskArgs(`${dir}/e.vmdk`)}<newCapacityKb>4096</newCapacityKb>`);
    expect(grown.state).toBe("success");
    const flat = (await ds.http("GET", `${dir}/e-flat.vmdk`)).bytes;
    expect(flat.length).toBe(4096 * 1024);
    expect(flat.subarray(0, data.length).equals(data)).toBe(true);
    expect(flat.subarray(data.length).every((b) => b === 0)).toBe(true);
    const text = (await ds.http("GET", `${dir}/e.vmdk`)).bytes.toString();
    expect(text).toContain('RW 8192 VMFS "e-flat.vmdk"');
    expect(text).toContain('ddb.geometry.heads = "255"');

    const same = await ds.runTask("ExtendVirtualDisk_Task", vdm, `${ds.diskArgs(`${dir}/e.vmdk`)}<newCapacityKb>4096</newCapacityKb>`);
    expect(same.state).toBe("success");
    const shrink = await ds.runTask("ExtendVirtualDisk_Task", vdm, `${ds.diskArgs(`${dir}/e.vmdk`)}<newCapacityKb>1024</newCapacityKb>`);
    expect(shrink.state).toBe("error");
    expect(shrink.error.fault["@_type"]).toBe("InvalidArgument");
    expect(shrink.error.fault.invalidProperty).toBe("newCapacityKb");
    expect((await ds.http("GET", `${dir}/e-flat.vmdk`)).bytes.length).toBe(4096 * 1024);

    const missing = await ds.runTask("ExtendVirtualDisk_Task", vdm, `${ds.diskArgs(`${dir}/none.vmdk`)}<newCapacityKb>4096</newCapacityKb>`);
    expect(missing.error.fault["@_type"]).toBe("FileNotFound");
    expect(missing.error.fault.file).toBe(`[LocalDS_0] ${dir}/none.vmdk`);
  });

  it("ExtendVirtualDisk_Task needs a session", async () => {
    const anon = new RawSoap(sim.info.url);
    const err = await anon
      .call("ExtendVirtualDisk_Task", ds.vdm, `${ds.diskArgs("x.vmdk")}<newCapacityKb>4096</newCapacityKb>`)
      .catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/NotAuthenticated/);
  });
});
