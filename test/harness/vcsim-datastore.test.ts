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
