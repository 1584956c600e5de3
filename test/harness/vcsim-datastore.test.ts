// The simulator's datastore behaviour, corrected to vCenter's where the Image resource
// depends on it: HTTP file access needs a session.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Agent, request } from "undici";
import { RawSoap, asArray, moRefXml, toMoRef, xmlEscape, type MoRef, type Parsed } from "../support/raw-soap.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";

let sim: Vcsim;
let sc: Parsed;
let soap: RawSoap;
let dc: MoRef;
let browser: MoRef;
const dcName = () => sim.info.inventory.datacenters[0]!.name;

async function client(): Promise<RawSoap> {
  const c = new RawSoap(sim.info.url, new Agent({ keepAliveTimeout: 10 }));
  await c.login(sc, sim.info.username, sim.info.password);
  return c;
}

function fileUrl(name: string): string {
  return `${sim.info.url.replace(/\/sdk$/, "")}/folder/${name}?dcPath=${encodeURIComponent(dcName())}&dsName=LocalDS_0`;
}

async function http(method: "GET" | "PUT" | "POST" | "DELETE", name: string, cookie?: string, body?: Buffer) {
  const res = await request(fileUrl(name), { method, headers: cookie ? { cookie } : {}, ...(body ? { body } : {}) });
  const bytes = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, bytes };
}

async function mkdir(name: string): Promise<void> {
  await soap.call(
    "MakeDirectory",
    toMoRef(sc.fileManager),
    `<name>[LocalDS_0] ${xmlEscape(name)}</name>${moRefXml("datacenter", dc)}<createParentDirectories>true</createParentDirectories>`,
  );
}

beforeAll(async () => {
  sim = await startVcsim({ clusters: 1, hosts: 1 });
  sc = await new RawSoap(sim.info.url).serviceContent();
  soap = await client();
  const [found] = await soap.retrieveAll(sc, "Datacenter", ["name"]);
  dc = found!.obj as MoRef;
  const [ds] = (await soap.retrieveAll(sc, "Datastore", ["name", "browser"])).filter((d) => d.name === "LocalDS_0");
  browser = toMoRef(ds!.browser);
});

/** Runs a *_Task method and returns its task's info once it has ended (the simulator ends tasks at once). */
async function runTask(method: string, self: MoRef, inner: string): Promise<Parsed> {
  const task = toMoRef((await soap.call(method, self, inner))!);
  for (let i = 0; i < 1000; i++) {
    const { info } = await soap.properties(sc, task, ["info"]);
    if (info.state === "success" || info.state === "error") return info as Parsed;
  }
  throw new Error(`${method}: task never ended`);
}

function fileNames(result: Parsed): string[] {
  return asArray(result.file as Parsed | Parsed[] | undefined)
    .map((f) => String(f.path))
    .sort();
}
afterAll(() => sim?.stop());

describe("datastore HTTP access (/folder)", () => {
  it("answers 401 to a GET, PUT or DELETE without a session cookie, and stores nothing", async () => {
    const name = `noauth-${Date.now()}.bin`;
    expect((await http("PUT", name, undefined, Buffer.from("x"))).status).toBe(401);
    expect((await http("GET", name)).status).toBe(401);
    expect((await http("DELETE", name)).status).toBe(401);
    expect((await http("GET", name, soap.cookie)).status).toBe(404);
  });

  it("answers 401 to the cookie of a session that logged out", async () => {
    const gone = await client();
    const name = `expired-${Date.now()}.bin`;
    expect((await http("PUT", name, gone.cookie, Buffer.from("abc"))).status).toBe(200);
    await gone.call("Logout", toMoRef(sc.sessionManager));
    expect((await http("GET", name, gone.cookie)).status).toBe(401);
    expect((await http("PUT", name, gone.cookie, Buffer.from("x"))).status).toBe(401);
    expect((await http("GET", name, soap.cookie)).bytes.toString()).toBe("abc");
  });

  it("a PUT into a folder that does not exist makes the folder, as vCenter's does", async () => {
    const dir = `newdir-${Date.now()}`;
    expect((await http("GET", `${dir}/sub/a.bin`, soap.cookie)).status).toBe(404);
    expect((await http("PUT", `${dir}/sub/a.bin`, soap.cookie, Buffer.from("hello"))).status).toBe(200);
    expect((await http("GET", `${dir}/sub/a.bin`, soap.cookie)).bytes.toString()).toBe("hello");
  });

  it("DELETE removes a file (404 when there is none) and refuses a folder", async () => {
    const dir = `del-${Date.now()}`;
    await mkdir(dir);
    expect((await http("PUT", `${dir}/f.bin`, soap.cookie, Buffer.from("x"))).status).toBe(200);
    expect((await http("DELETE", `${dir}/f.bin`, soap.cookie)).status).toBe(204);
    expect((await http("GET", `${dir}/f.bin`, soap.cookie)).status).toBe(404);
    expect((await http("DELETE", `${dir}/f.bin`, soap.cookie)).status).toBe(404);
    expect((await http("DELETE", dir, soap.cookie)).status).toBe(403);
  });

  it("cutUpload still cuts an authenticated upload into an existing folder", async () => {
    const dir = `cut-${Date.now()}`;
    await mkdir(dir);
    const rule = await sim.control.addRule({ kind: "cutUpload", afterBytes: 4096 });
    const err = await http("PUT", `${dir}/p.bin`, soap.cookie, Buffer.alloc(1 << 20, 1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((await http("GET", `${dir}/p.bin`, soap.cookie)).bytes.length).toBe(4096);
    expect(await sim.control.rule(rule.id)).toMatchObject({ fired: 1 });
  });
});

describe("datastore browser", () => {
  let dir: string;
  beforeAll(async () => {
    dir = `browse-${Date.now()}`;
    await mkdir(`${dir}/sub`);
    await http("PUT", `${dir}/a.vmdk`, soap.cookie, Buffer.from("descriptor"));
    await http("PUT", `${dir}/a-flat.vmdk`, soap.cookie, Buffer.alloc(4096));
    await http("PUT", `${dir}/sub/c.iso`, soap.cookie, Buffer.from("iso"));
  });

  it("SearchDatastore_Task without a searchSpec lists every file and folder, by path only", async () => {
    const info = await runTask("SearchDatastore_Task", browser, `<datastorePath>[LocalDS_0] ${dir}</datastorePath>`);
    expect(info.state).toBe("success");
    expect(info.result.folderPath).toBe(`[LocalDS_0] ${dir}`);
    expect(fileNames(info.result)).toEqual(["a-flat.vmdk", "a.vmdk", "sub"]);
    const files = asArray(info.result.file as Parsed[]);
    expect(files.find((f) => f.path === "sub")!["@_type"]).toBe("FolderFileInfo");
    expect(files.every((f) => f.fileSize === undefined && f.modification === undefined)).toBe(true);
  });

  it("SearchDatastoreSubFolders_Task without a searchSpec lists each folder's files", async () => {
    const info = await runTask("SearchDatastoreSubFolders_Task", browser, `<datastorePath>[LocalDS_0] ${dir}</datastorePath>`);
    expect(info.state).toBe("success");
    const results = asArray(info.result.HostDatastoreBrowserSearchResults as Parsed | Parsed[]);
    const byFolder = Object.fromEntries(results.map((r) => [String(r.folderPath), fileNames(r)]));
    expect(byFolder[`[LocalDS_0] ${dir}`]).toEqual(["a-flat.vmdk", "a.vmdk", "sub"]);
    expect(byFolder[`[LocalDS_0] ${dir}/sub`]).toEqual(["c.iso"]);
  });

  it("a searchSpec without matchPattern matches every file, with the details it asks for", async () => {
    const info = await runTask(
      "SearchDatastore_Task",
      browser,
      `<datastorePath>[LocalDS_0] ${dir}</datastorePath><searchSpec><details><fileType>false</fileType><fileSize>true</fileSize>` +
        `<modification>false</modification><fileOwner>false</fileOwner></details></searchSpec>`,
    );
    expect(fileNames(info.result)).toEqual(["a-flat.vmdk", "a.vmdk", "sub"]);
    const flat = asArray(info.result.file as Parsed[]).find((f) => f.path === "a-flat.vmdk")!;
    expect(Number(flat.fileSize)).toBe(4096);
  });

  it("a searchSpec with a matchPattern is the simulator's own search, unchanged", async () => {
    const info = await runTask(
      "SearchDatastore_Task",
      browser,
      `<datastorePath>[LocalDS_0] ${dir}</datastorePath><searchSpec><matchPattern>*.vmdk</matchPattern></searchSpec>`,
    );
    expect(fileNames(info.result)).toEqual(["a-flat.vmdk", "a.vmdk"]);
  });

  it("a folder that does not exist is FileNotFound", async () => {
    const info = await runTask("SearchDatastore_Task", browser, `<datastorePath>[LocalDS_0] ${dir}-none</datastorePath>`);
    expect(info.state).toBe("error");
    expect(info.error.fault["@_type"]).toBe("FileNotFound");
  });
});

/** The datacenter-qualified disk methods take their datastore path and datacenter first. */
function diskArgs(name: string): string {
  return `<name>[LocalDS_0] ${xmlEscape(name)}</name>${moRefXml("datacenter", dc)}`;
}

async function createDisk(name: string, capacityKb: number, diskType = "thin", adapterType = "lsiLogic"): Promise<Parsed> {
  return runTask(
    "CreateVirtualDisk_Task",
    toMoRef(sc.virtualDiskManager),
    `${diskArgs(name)}<spec xsi:type="FileBackedVirtualDiskSpec"><diskType>${diskType}</diskType>` +
      `<adapterType>${adapterType}</adapterType><capacityKb>${capacityKb}</capacityKb></spec>`,
  );
}

describe("virtual disks", () => {
  it("CreateVirtualDisk_Task writes a descriptor and a -flat extent of the capacity asked", async () => {
    const dir = `create-${Date.now()}`;
    await mkdir(dir);
    expect((await createDisk(`${dir}/d.vmdk`, 1024)).state).toBe("success");
    const text = (await http("GET", `${dir}/d.vmdk`, soap.cookie)).bytes.toString();
    expect(text).toContain('createType="vmfs"');
    expect(text).toContain('RW 2048 VMFS "d-flat.vmdk"');
    expect(text).toContain('ddb.adapterType = "lsilogic"');
    expect(text).toContain('ddb.thinProvisioned = "1"');
    expect((await http("GET", `${dir}/d-flat.vmdk`, soap.cookie)).bytes.length).toBe(1024 * 1024);

    const again = await createDisk(`${dir}/d.vmdk`, 1024);
    expect(again.error.fault["@_type"]).toBe("FileAlreadyExists");
    const ide = await createDisk(`${dir}/i.vmdk`, 2048, "preallocated", "ide");
    expect(ide.state).toBe("success");
    const ideText = (await http("GET", `${dir}/i.vmdk`, soap.cookie)).bytes.toString();
    expect(ideText).toContain('ddb.adapterType = "ide"');
    expect(ideText).not.toContain("thinProvisioned");
  });

  it("ExtendVirtualDisk_Task grows the extent and the descriptor, keeps the data, refuses to shrink", async () => {
    const dir = `extend-${Date.now()}`;
    await mkdir(dir);
    await createDisk(`${dir}/e.vmdk`, 1024);
    const data = Buffer.alloc(1024 * 1024, 0);
    data.write("first sector", 0);
    data.write("last sector", data.length - 512);
    expect((await http("PUT", `${dir}/e-flat.vmdk`, soap.cookie, data)).status).toBe(200);

    const vdm = toMoRef(sc.virtualDiskManager);
    const grown = await runTask("ExtendVirtualDisk_Task", vdm, `${diskArgs(`${dir}/e.vmdk`)}<newCapacityKb>4096</newCapacityKb>`);
    expect(grown.state).toBe("success");
    const flat = (await http("GET", `${dir}/e-flat.vmdk`, soap.cookie)).bytes;
    expect(flat.length).toBe(4096 * 1024);
    expect(flat.subarray(0, data.length).equals(data)).toBe(true);
    expect(flat.subarray(data.length).every((b) => b === 0)).toBe(true);
    const text = (await http("GET", `${dir}/e.vmdk`, soap.cookie)).bytes.toString();
    expect(text).toContain('RW 8192 VMFS "e-flat.vmdk"');
    expect(text).toContain('ddb.geometry.heads = "255"');

    const same = await runTask("ExtendVirtualDisk_Task", vdm, `${diskArgs(`${dir}/e.vmdk`)}<newCapacityKb>4096</newCapacityKb>`);
    expect(same.state).toBe("success");
    const shrink = await runTask("ExtendVirtualDisk_Task", vdm, `${diskArgs(`${dir}/e.vmdk`)}<newCapacityKb>1024</newCapacityKb>`);
    expect(shrink.state).toBe("error");
    expect(shrink.error.fault["@_type"]).toBe("InvalidArgument");
    expect(shrink.error.fault.invalidProperty).toBe("newCapacityKb");
    expect((await http("GET", `${dir}/e-flat.vmdk`, soap.cookie)).bytes.length).toBe(4096 * 1024);

    const missing = await runTask("ExtendVirtualDisk_Task", vdm, `${diskArgs(`${dir}/none.vmdk`)}<newCapacityKb>4096</newCapacityKb>`);
    expect(missing.error.fault["@_type"]).toBe("FileNotFound");
    expect(missing.error.fault.file).toBe(`[LocalDS_0] ${dir}/none.vmdk`);
  });

  it("ExtendVirtualDisk_Task needs a session", async () => {
    const anon = new RawSoap(sim.info.url);
    const err = await anon
      .call("ExtendVirtualDisk_Task", toMoRef(sc.virtualDiskManager), `${diskArgs("x.vmdk")}<newCapacityKb>4096</newCapacityKb>`)
      .catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/NotAuthenticated/);
  });
});
