// Helpers for the harness's datastore tests: a logged-in raw client on a private
// simulator, its datastore files over HTTP, and *_Task calls read to their end.
import { Agent, request } from "undici";
import { RawSoap, moRefXml, toMoRef, xmlEscape, type MoRef, type Parsed } from "../support/raw-soap.js";
import type { Vcsim } from "../vcsim/index.js";

export type HttpMethod = "GET" | "PUT" | "POST" | "DELETE";

export class DatastoreHarness {
  private constructor(
    readonly sim: Vcsim,
    readonly sc: Parsed,
    readonly soap: RawSoap,
    readonly dc: MoRef,
    readonly browser: MoRef,
  ) {}

  static async open(sim: Vcsim): Promise<DatastoreHarness> {
    const sc = await new RawSoap(sim.info.url).serviceContent();
    const soap = await login(sim, sc);
    const [dc] = await soap.retrieveAll(sc, "Datacenter", ["name"]);
    const [ds] = (await soap.retrieveAll(sc, "Datastore", ["name", "browser"])).filter((d) => d.name === "LocalDS_0");
    return new DatastoreHarness(sim, sc, soap, dc!.obj as MoRef, toMoRef(ds!.browser));
  }

  /** Another logged-in client. */
  client(): Promise<RawSoap> {
    return login(this.sim, this.sc);
  }

  get cookie(): string {
    return this.soap.cookie!;
  }

  get vdm(): MoRef {
    return toMoRef(this.sc.virtualDiskManager);
  }

  fileUrl(name: string): string {
    const dcName = this.sim.info.inventory.datacenters[0]!.name;
    return `${this.sim.info.url.replace(/\/sdk$/, "")}/folder/${name}?dcPath=${encodeURIComponent(dcName)}&dsName=LocalDS_0`;
  }

  /** One datastore file request; `cookie` null sends none. */
  async http(method: HttpMethod, name: string, body?: Buffer, cookie: string | null = this.cookie) {
    const res = await request(this.fileUrl(name), { method, headers: cookie ? { cookie } : {}, ...(body ? { body } : {}) });
    const bytes = Buffer.from(await res.body.arrayBuffer());
    return { status: res.statusCode, bytes };
  }

  async read(name: string): Promise<Buffer> {
    const { status, bytes } = await this.http("GET", name);
    if (status !== 200) throw new Error(`GET ${name}: HTTP ${status}`);
    return bytes;
  }

  async status(name: string): Promise<number> {
    return (await this.http("GET", name)).status;
  }

  async mkdir(name: string): Promise<void> {
    await this.soap.call(
      "MakeDirectory",
      toMoRef(this.sc.fileManager),
      `<name>[LocalDS_0] ${xmlEscape(name)}</name>${moRefXml("datacenter", this.dc)}<createParentDirectories>true</createParentDirectories>`,
    );
  }

  /** `<name>` and `<datacenter>` of a disk method, for a path on LocalDS_0. */
  diskArgs(name: string, tag = "name", dcTag = "datacenter"): string {
    return `<${tag}>[LocalDS_0] ${xmlEscape(name)}</${tag}>${moRefXml(dcTag, this.dc)}`;
  }

  /** Runs a *_Task method and returns its task's info once it has ended (the simulator ends these tasks before it answers). */
  async runTask(method: string, self: MoRef, inner: string): Promise<Parsed> {
    const task = toMoRef((await this.soap.call(method, self, inner))!);
    for (let i = 0; i < 1000; i++) {
      const { info } = await this.soap.properties(this.sc, task, ["info"]);
      if (info.state === "success" || info.state === "error") return info as Parsed;
    }
    throw new Error(`${method}: task never ended`);
  }

  createDisk(name: string, capacityKb: number, diskType = "thin", adapterType = "lsiLogic"): Promise<Parsed> {
    return this.runTask(
      "CreateVirtualDisk_Task",
      this.vdm,
      `${this.diskArgs(name)}<spec xsi:type="FileBackedVirtualDiskSpec"><diskType>${diskType}</diskType>` +
        `<adapterType>${adapterType}</adapterType><capacityKb>${capacityKb}</capacityKb></spec>`,
    );
  }
}

async function login(sim: Vcsim, sc: Parsed): Promise<RawSoap> {
  const c = new RawSoap(sim.info.url, new Agent({ keepAliveTimeout: 10 }));
  await c.login(sc, sim.info.username, sim.info.password);
  return c;
}
