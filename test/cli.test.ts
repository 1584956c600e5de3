// The command line (`pulumi-vmware-vcenter cache list|sweep`), run as cron would run it
// (a process of its own, tsx on provider/cli.ts) against a TLS simulator, configured by
// environment variables only: its table and JSON, the progress lines, the exit codes,
// and that its session is logged out.
import { execFile, spawn } from "node:child_process";
import { access, constants, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ageMarkerName, type SweepReport } from "../provider/vsphere/cache-sweep.js";
import { VimClient } from "../provider/vsphere/client.js";
import { fileExists, listFolder, makeDirectory } from "../provider/vsphere/datastore.js";
import { cacheLocation } from "../provider/vsphere/image-cache.js";
import { getCluster, getDatacenter, type Cluster, type Datacenter } from "../provider/vsphere/inventory.js";
import { simOptions } from "./support/clients.js";
import { addDisk, createDisk, createVm } from "./support/vms.js";
import { startVcsim, type Vcsim } from "./vcsim/index.js";

const ROOT = join(__dirname, "..");
const TSX = join(ROOT, "node_modules", ".bin", "tsx");
const CLI = join(ROOT, "provider", "cli.ts");
const P = "cli";

let sim: Vcsim;
let client: VimClient;
let dc: Datacenter;
let cluster: Cluster;
let DS0: string;
let DS1: string;

beforeAll(async () => {
  sim = await startVcsim({ clusters: 1, hosts: 1, datastores: 2, tls: true });
  client = await VimClient.connect(simOptions(sim));
  dc = await getDatacenter(client);
  cluster = await getCluster(client, dc, sim.info.inventory.datacenters[0]!.clusters[0]!.name);
  [DS0, DS1] = sim.info.inventory.datacenters[0]!.datastores.filter((d) => d.startsWith("LocalDS_")) as [string, string];
  // DS0: "used" (a linked clone's parent) and "old" (unused, marked 30 days ago); DS1: "fresh" (unused, unmarked).
  const used = cacheLocation(DS0, P, "used", "disk");
  const old = cacheLocation(DS0, P, "old", "disk");
  const fresh = cacheLocation(DS1, P, "fresh", "disk");
  for (const loc of [used, old, fresh]) {
    await makeDirectory(client, dc, loc.folder, { createParents: true });
    await createDisk(client, dc, loc.disk.toString(), 64, "thin");
  }
  await makeDirectory(client, dc, old.folder.join(ageMarkerName(new Date(Date.now() - 30 * 86400_000))), { createParents: false });
  const vm = await createVm(client, dc, cluster, "cli-vm", DS0);
  await makeDirectory(client, dc, `[${DS0}] cli-vm`, { createParents: true });
  await addDisk(client, vm, `[${DS0}] cli-vm/cli-vm.vmdk`, { fileName: used.disk.toString(), diskMode: "persistent" });
});
afterAll(async () => {
  await client?.close();
  await sim?.stop();
});

/** The simulator's settings as cron's environment would carry them. */
function env(over: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    VSPHERE_SERVER: sim.info.host,
    VMWARE_HOST_PORT: String(sim.info.port),
    VSPHERE_USER: sim.info.username,
    VSPHERE_PASSWORD: sim.info.password,
    VMWARE_CA_FILE: sim.info.caFile,
    VMWARE_CLUSTER_NAME: cluster.name,
    VMWARE_CACHE_PREFIX: P,
    VMWARE_API_RETRY_COUNT: "0",
  };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) delete e[k];
    else e[k] = v;
  }
  return e;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], environment = env()): Promise<Run> {
  return runCommand(TSX, [CLI, ...args], environment);
}

function runCommand(command: string, args: string[], environment: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: environment, cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const folder = (ds: string, id: string) => cacheLocation(ds, P, id, "disk").folder;

describe("pulumi-vmware-vcenter cache list", () => {
  it("prints a table of what is cached where, with sizes and users, and logs its session out", async () => {
    const live = await sim.control.liveSessions();
    const r = await cli(["cache", "list"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^DATASTORE\s+IMAGE\s+STATE\s+SIZE\s+NOTE$/);
    expect(lines.find((l) => l.startsWith(`${DS0}  `) && / used /.test(l))).toMatch(/in-use\s+\d+(\.\d)? KiB\s+used by cli-vm$/);
    expect(lines.find((l) => / old /.test(l))).toMatch(/aging .*unused since \d{4}-/);
    expect(lines.find((l) => / fresh /.test(l))).toMatch(new RegExp(`^${DS1}\\s+fresh\\s+kept`));
    expect(await sim.control.liveSessions()).toBe(live);
  });

  it("--json gives the listing per datastore; --datastore-regex narrows it (matched from the start)", async () => {
    const r = await cli(["cache", "list", "--json", "--datastore-regex", "LocalDS_1"]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { datastores: Array<{ datastore: string; images: Array<{ imageId: string; state: string; bytes: number; files: string[] }> }> };
    expect(out.datastores.map((d) => d.datastore)).toEqual([DS1]);
    expect(out.datastores[0]!.images).toMatchObject([{ imageId: "fresh", state: "kept", files: ["fresh-flat.vmdk", "fresh.vmdk"] }]);
    expect(out.datastores[0]!.images[0]!.bytes).toBeGreaterThan(0);

    // The same from VMWARE_DATASTORE_REGEX; --cache-prefix over VMWARE_CACHE_PREFIX.
    const fromEnv = await cli(["cache", "list", "--json"], env({ VMWARE_DATASTORE_REGEX: "LocalDS_1" }));
    expect((JSON.parse(fromEnv.stdout) as typeof out).datastores.map((d) => d.datastore)).toEqual([DS1]);
    const otherPrefix = await cli(["cache", "list", "--json", "--cache-prefix", "elsewhere"]);
    expect((JSON.parse(otherPrefix.stdout) as typeof out).datastores.map((d) => d.images.length)).toEqual([0, 0]);
  });
});

describe("pulumi-vmware-vcenter cache sweep", () => {
  it("--dry-run --json: the report of what a sweep would do, a progress line per datastore on stderr, nothing changed", async () => {
    const r = await cli(["cache", "sweep", "--dry-run", "--json"]);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as SweepReport;
    expect(report.dryRun).toBe(true);
    const states = Object.fromEntries(report.datastores.flatMap((d) => d.images.map((i) => [i.imageId, i.state])));
    expect(states).toEqual({ used: "in-use", old: "would-remove", fresh: "marked" });
    const progress = r.stderr.trimEnd().split("\n");
    expect(progress).toHaveLength(2);
    expect(progress[0]).toMatch(new RegExp(`^${DS0}: 2 images, 1 in use, 0 marked, 0 aging, 1 removed, 0 B freed, 0 leftover folders, 0 errors$`));
    expect(progress[1]).toMatch(new RegExp(`^${DS1}: 1 images, 0 in use, 1 marked`));
    expect(await fileExists(client, dc, folder(DS0, "old"))).toBe(true);
    expect((await listFolder(client, dc, folder(DS1, "fresh"))).map((e) => e.name).filter((n) => n.startsWith("ts-"))).toEqual([]);
  });

  it("sweeps: the table says what was removed and freed; the old image is gone, the fresh one marked, the used one kept", async () => {
    const live = await sim.control.liveSessions();
    const r = await cli(["cache", "sweep"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^DATASTORE\s+IMAGE\s+STATE\s+SIZE\s+NOTE$/m);
    expect(r.stdout).toMatch(new RegExp(`^${DS0}\\s+old\\s+removed\\s`, "m"));
    expect(r.stdout).toMatch(new RegExp(`^${DS1}\\s+fresh\\s+marked\\s`, "m"));
    expect(r.stdout).toMatch(new RegExp(`^${DS0}: \\d+(\\.\\d)? KiB freed$`, "m"));
    expect(r.stdout).toMatch(/^total: \d+(\.\d)? KiB freed, \d+ vCenter calls, /m);
    expect(await fileExists(client, dc, folder(DS0, "old"))).toBe(false);
    expect(await fileExists(client, dc, folder(DS0, "used"))).toBe(true);
    expect((await listFolder(client, dc, folder(DS1, "fresh"))).map((e) => e.name).filter((n) => n.startsWith("ts-"))).toHaveLength(1);
    expect(await sim.control.liveSessions()).toBe(live);
  });

  it("--min-age overrides the configured minimum age; VMWARE_REMOVE_UNUSED_BASE_IMAGES=false keeps everything", async () => {
    const kept = await cli(["cache", "sweep", "--json", "--min-age", "0"], env({ VMWARE_REMOVE_UNUSED_BASE_IMAGES: "false" }));
    expect(kept.code).toBe(0);
    expect((JSON.parse(kept.stdout) as SweepReport).datastores[1]!.images[0]).toMatchObject({ imageId: "fresh", state: "kept" });
    expect(await fileExists(client, dc, folder(DS1, "fresh"))).toBe(true);
    const r = await cli(["cache", "sweep", "--json", "--min-age", "0"]);
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as SweepReport).datastores[1]!.images[0]).toMatchObject({ imageId: "fresh", state: "removed" });
    expect(await fileExists(client, dc, folder(DS1, "fresh"))).toBe(false);
  });

  it("a datastore that fails: its error in the table and exit code 1, the other datastore swept", async () => {
    await sim.control.addRule({ kind: "taskError", method: "SearchDatastoreSubFolders_Task", args: { datastorePath: `[${DS0}] ${P}_base` }, fault: "FileFault", message: "disk on fire" });
    try {
      const r = await cli(["cache", "sweep"]);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(new RegExp(`^${DS0}: .*ERROR listing the cache failed: .*FileFault: disk on fire$`, "m"));
      const progress = r.stderr.trimEnd().split("\n");
      expect(progress).toHaveLength(2);
      expect(progress[0]).toMatch(new RegExp(`^${DS0}: 0 images, .* 1 errors$`));
      expect(progress[1]).toMatch(new RegExp(`^${DS1}: .* 0 errors$`));
    } finally {
      await sim.control.clearRules();
    }
  });
});

describe("pulumi-vmware-vcenter exit codes", () => {
  it("2 for a usage error or missing settings, 0 for --help, 1 for a refused login or an unknown cluster", async () => {
    const bad = await cli(["cache", "purge"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown command: cache purge\nusage: pulumi-vmware-vcenter cache sweep/);
    expect((await cli(["cache", "sweep", "--min-age", "soon"])).code).toBe(2);
    expect((await cli(["cache", "list", "--dry-run"])).stderr).toMatch(/--dry-run is for cache sweep/);

    const help = await cli(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: /);

    const unset = await cli(["cache", "list"], env({ VSPHERE_SERVER: undefined, VMWARE_CLUSTER_NAME: undefined }));
    expect(unset.code).toBe(2);
    expect(unset.stderr).toMatch(/vmware:hostIp is not set .*VMWARE_HOST_IP \/ VSPHERE_SERVER/);
    const noCluster = await cli(["cache", "list"], env({ VMWARE_CLUSTER_NAME: undefined }));
    expect(noCluster.code).toBe(2);
    expect(noCluster.stderr).toMatch(/VMWARE_CLUSTER_NAME/);

    const denied = await cli(["cache", "list"], env({ VSPHERE_PASSWORD: "wrong" }));
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/refused the login .*VSPHERE_PASSWORD/);
    const lost = await cli(["cache", "sweep"], env({ VMWARE_CLUSTER_NAME: "nope" }));
    expect(lost.code).toBe(1);
    expect(lost.stderr).toMatch(/cluster "nope" not found/);
    // The datastores are chosen as the resource chooses them (sweepDatastores): a regex matching none is a failure, not an empty sweep.
    const none = await cli(["cache", "sweep", "--datastore-regex", "zzz"]);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(new RegExp(`^pulumi-vmware-vcenter cache sweep: datastoreRegex "zzz" matches none of cluster ${cluster.name}'s accessible datastores \\(its datastores: .*${DS0}, ${DS1}`));
  });
});

describe("pulumi-vmware-vcenter interrupted", () => {
  it("SIGINT during a sweep logs the session out and exits 130", async () => {
    const live = await sim.control.liveSessions();
    const held = await sim.control.addRule({ kind: "delay", method: "RetrievePropertiesEx", args: { "specSet.propSet.type": "VirtualMachine" }, ms: 5000 });
    try {
      const child = spawn(TSX, [CLI, "cache", "sweep"], { env: env(), cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
      let stderr = "";
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      const closed = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
      while ((await sim.control.rule(held.id)).fired === 0) await new Promise((r) => setImmediate(r));
      expect(await sim.control.liveSessions()).toBe(live + 1);
      child.kill("SIGINT");
      expect(await closed).toBe(130);
      expect(stderr).toBe("interrupted (SIGINT): logging out\n");
    } finally {
      await sim.control.clearRules();
    }
    expect(await sim.control.liveSessions()).toBe(live);
  });
});

describe("the shipped command", () => {
  it("package.json's bin is the build's dist/cli.js, which runs under plain node (shebang, CommonJS) and lists the cache", async () => {
    const pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as { bin?: Record<string, string> };
    expect(pkg.bin).toEqual({ "pulumi-vmware-vcenter": "./dist/cli.js" });
    // The project's own tsup config, into a folder of this test's (dist/ is other tests' to build).
    const out = join(ROOT, ".cache", `cli-build-${process.pid}`);
    try {
      await promisify(execFile)(join(ROOT, "node_modules", ".bin", "tsup"), ["--out-dir", out, "--no-dts", "--silent"], { cwd: ROOT });
      const bin = join(out, "cli.js");
      expect((await readFile(bin, "utf8")).startsWith("#!/usr/bin/env node\n")).toBe(true);
      await access(bin, constants.X_OK);
      const r = await runCommand(bin, ["cache", "list", "--json"], env());
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect((JSON.parse(r.stdout) as { datastores: Array<{ datastore: string }> }).datastores.map((d) => d.datastore)).toEqual([DS0, DS1]);
    } finally {
      await rm(out, { recursive: true, force: true });
    }
  });
});
