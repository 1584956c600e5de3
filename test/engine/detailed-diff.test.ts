// Detailed diffs reach the engine: through the real dynamic-provider process (whose
// stock diff() drops them; detailed-diff.ts carries them), a PortGroup's and an Image's
// diff say which property changes and whether it replaces, and a preview shows it. A
// handler called in this process (no host) gives plain results, and a host that does not
// hand `replaces` over as expected gets plain results too: no stand-in replace key, ever.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configure, handle } from "../../provider/handler.js";
import { SENTINEL, findHostProto, forEngine } from "../../provider/resources/detailed-diff.js";
import { portGroupHandler } from "../../provider/resources/port-group.js";
import { VimClient } from "../../provider/vsphere/client.js";
import { findCluster } from "../../provider/vsphere/inventory.js";
import { getHostNetworking, updateStandardPortGroup } from "../../provider/vsphere/network.js";
import { simOptions } from "../support/clients.js";
import { ImageDir } from "../support/images.js";
import { PROJECT_ROOT } from "../vcsim/build.mjs";
import { startVcsim, type Vcsim } from "../vcsim/index.js";
import { HarnessStack, simulatorConfig, type HarnessResult, type StateResource } from "./index.js";
import { buildPackageCopy, type PackageCopy } from "./package-copy.js";
import { DynamicProviderProcess } from "./provider-process.js";

const PASSWORD = "pw-Detail-9e4c";
let sim: Vcsim;
let client: VimClient;
let pkg: PackageCopy;
let dir: string;
let images: ImageDir;

beforeAll(async () => {
  sim = await startVcsim({ tls: true, hosts: 2, datastores: 1, password: PASSWORD });
  client = await VimClient.connect(simOptions(sim));
  // A private build of the working tree (dist/ may be another file's, or stale).
  pkg = buildPackageCopy("test/engine/programs/port-groups.ts");
  copyFileSync(join(PROJECT_ROOT, "test/engine/programs/images.ts"), join(pkg.dir, "programs", "images.ts"));
  dir = mkdtempSync(join(tmpdir(), "detailed-diff-"));
  images = await ImageDir.create();
});
afterAll(async () => {
  await client?.close();
  await sim?.stop();
  await images?.cleanup();
  pkg?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

const config = (extra: Record<string, string> = {}) => ({ ...simulatorConfig(sim, PASSWORD), ...extra });

function stack(name: string, program: string, extra: Record<string, string>): HarnessStack {
  return new HarnessStack({ program, cwd: pkg.dir, stateFile: join(dir, `${name}.json`), config: config(extra), secretKeys: ["vmware:hostPassword"] });
}

function ok(r: HarnessResult): HarnessResult {
  expect(r.errors).toEqual([]);
  return r;
}

function only(s: HarnessStack): StateResource {
  const [r, ...more] = s.state().resources;
  expect(more).toEqual([]);
  return r!;
}

/** Runs `fn` with a dynamic-provider process started in `cwd`, configured for the simulator. */
async function withProvider<T>(cwd: string, extra: Record<string, string>, fn: (p: DynamicProviderProcess) => Promise<T>): Promise<T> {
  const proc = await DynamicProviderProcess.start(cwd);
  try {
    await proc.configure(config(extra));
    return await fn(proc);
  } finally {
    await proc.stop();
  }
}

/** check, then diff, of `r` against new inputs (the engine's order). */
async function diffAgainst(proc: DynamicProviderProcess, r: StateResource, news: Record<string, unknown>) {
  const checked = await proc.check(r.urn, r.inputs, { ...news, __provider: r.inputs.__provider });
  expect(checked.failures).toEqual([]);
  return proc.diff(r.urn, r.id, r.outputs, checked.inputs);
}

describe("detailed diff through the dynamic-provider process", () => {
  it("PortGroup: a VLAN change is an UPDATE of vlanId, a kind change an UPDATE_REPLACE of kind, no change reports nothing; previews show them", async () => {
    const s = stack("pg", "programs/port-groups.ts", { "pgtest:name": "pg-detail", "pgtest:vlanId": "100" });
    ok(await s.up());
    const r = only(s);
    const inputs = { name: "pg-detail", vlanId: 100 };

    await withProvider(pkg.dir, {}, async (proc) => {
      expect(await diffAgainst(proc, r, inputs)).toEqual({ changes: "none", replaces: [], deleteBeforeReplace: false });
      expect(await diffAgainst(proc, r, { ...inputs, vlanId: 200 })).toEqual({
        changes: "some",
        replaces: [],
        deleteBeforeReplace: false,
        diffs: ["vlanId"],
        detailedDiff: { vlanId: { kind: "UPDATE", inputDiff: true } },
      });
      // To a distributed port group: the switch is named where none was, and a distributed one has no cluster.
      expect(await diffAgainst(proc, r, { ...inputs, kind: "distributed", switch: "DVS0" })).toEqual({
        changes: "some",
        replaces: ["kind", "switch", "clusterName"],
        deleteBeforeReplace: true,
        diffs: ["kind", "switch", "clusterName"],
        detailedDiff: {
          kind: { kind: "UPDATE_REPLACE", inputDiff: true },
          switch: { kind: "ADD_REPLACE", inputDiff: true },
          clusterName: { kind: "DELETE_REPLACE", inputDiff: true },
        },
      });
      expect(await diffAgainst(proc, r, { ...inputs, vlanId: 200, forceDelete: true })).toMatchObject({
        replaces: [],
        detailedDiff: { vlanId: { kind: "UPDATE", inputDiff: true }, forceDelete: { kind: "UPDATE", inputDiff: true } },
      });
    });

    const preview = ok(await s.preview({ ...s.opts.config, "pgtest:vlanId": "200" }));
    expect(preview.events).toEqual([
      { op: "update", key: "pulumi-nodejs:dynamic/vmware:PortGroup::standard", preview: true, detailedDiff: { vlanId: { kind: "UPDATE", inputDiff: true } } },
    ]);
    const renamed = ok(await s.preview({ ...s.opts.config, "pgtest:name": "pg-detail-2" }));
    expect(renamed.events).toEqual([
      {
        op: "replace",
        key: "pulumi-nodejs:dynamic/vmware:PortGroup::standard",
        preview: true,
        replaces: ["name"],
        detailedDiff: { name: { kind: "UPDATE_REPLACE", inputDiff: true } },
      },
    ]);

    // A host's VLAN changed outside: after a refresh the preview names that host's entry, compared with the state.
    const cluster = await findCluster(client, "DC0_C0");
    const h1 = (await getHostNetworking(client, cluster.hosts)).find((n) => n.hostName === "DC0_C0_H1")!;
    await updateStandardPortGroup(client, h1.networkSystem, { name: "pg-detail", vlanId: 300, vswitchName: "vSwitch0" });
    ok(await s.refresh());
    expect(ok(await s.preview()).events).toEqual([
      { op: "update", key: "pulumi-nodejs:dynamic/vmware:PortGroup::standard", preview: true, detailedDiff: { "hostVlans.DC0_C0_H1": { kind: "UPDATE", inputDiff: false } } },
    ]);
    ok(await s.up());
    expect(ok(await s.preview()).events.map((e) => e.op)).toEqual(["same"]);
    ok(await s.destroy());
  });

  it("Image: an osType change is an UPDATE of osType, new content an UPDATE_REPLACE of source", async () => {
    const first = await images.convertedVmdk("detail-a.vmdk", "streamOptimized", { adapter: "lsilogic", sizeMiB: 4, dataMiB: 1 });
    const second = await images.convertedVmdk("detail-b.vmdk", "streamOptimized", { adapter: "lsilogic", sizeMiB: 4, dataMiB: 1 });
    const spec = (args: Record<string, unknown>) => ({ "imgtest:images": JSON.stringify({ img: args }) });
    const s = stack("img", "programs/images.ts", { "vmware:cachePrefix": "detail", ...spec({ source: first }) });
    ok(await s.up());
    const r = only(s);

    await withProvider(pkg.dir, { "vmware:cachePrefix": "detail" }, async (proc) => {
      expect(await diffAgainst(proc, r, { source: first })).toEqual({ changes: "none", replaces: [], deleteBeforeReplace: false });
      expect(await diffAgainst(proc, r, { source: first, osType: "ubuntu64Guest" })).toEqual({
        changes: "some",
        replaces: [],
        deleteBeforeReplace: false,
        diffs: ["osType"],
        detailedDiff: { osType: { kind: "ADD", inputDiff: true } },
      });
      expect(await diffAgainst(proc, r, { source: second, osType: "ubuntu64Guest" })).toEqual({
        changes: "some",
        replaces: ["source"],
        deleteBeforeReplace: false,
        diffs: ["source", "osType"],
        detailedDiff: { source: { kind: "UPDATE_REPLACE", inputDiff: true }, osType: { kind: "ADD", inputDiff: true } },
      });
    });

    s.opts.config = { ...s.opts.config, ...spec({ source: first, osType: "ubuntu64Guest" }) };
    ok(await s.up());
    const changed = ok(await s.preview({ ...s.opts.config, ...spec({ source: first, osType: "windows9_64Guest" }) }));
    expect(changed.events).toEqual([{ op: "update", key: "pulumi-nodejs:dynamic/vmware:Image::img", preview: true, detailedDiff: { osType: { kind: "UPDATE", inputDiff: true } } }]);
    ok(await s.destroy());
  });

  it("gives plain results to a caller in this process, and to a host that does not pass replaces on as it is", async () => {
    // In this (test) process no host's DiffResponse is patched: forEngine leaves a result alone.
    expect(findHostProto()).toBeNull();
    const detailed = { changes: true, replaces: [], detailedDiff: { vlanId: { kind: "UPDATE" as const, inputDiff: true } } };
    expect(forEngine(detailed)).toBe(detailed);

    const olds = { name: "pg-x", vlanId: 100, kind: "standard", clusterName: "DC0_C0", datacenter: "DC0", forceDelete: false, hostSwitches: { H0: "vSwitch0" }, hostVlans: { H0: 100 }, hosts: ["H0"], missingHosts: [] };
    const news = { name: "pg-x", vlanId: 200, clusterName: "DC0_C0", forceDelete: false };
    const direct = await portGroupHandler.diff({ config: () => ({}) as never, client: () => Promise.reject(new Error("no vCenter here")) }, "id", olds, news);
    expect(direct).toEqual({ changes: true, replaces: [], detailedDiff: { vlanId: { kind: "UPDATE", inputDiff: true } } });
    await configure({ config: { get: (key: string) => config()[key] } });
    const routed = (await handle("PortGroup", "diff", "id", olds, news)) as typeof direct;
    expect(routed).toEqual(direct);
    expect(routed.replaces).not.toContain(SENTINEL);

    // A host whose diff copies `replaces` before handing it over: not the host this knows, so no marker.
    const host = hostWithCopiedReplaces();
    try {
      const s = stack("copied", "programs/port-groups.ts", { "pgtest:name": "pg-copied", "pgtest:vlanId": "100" });
      ok(await s.up());
      const r = only(s);
      await withProvider(host.dir, {}, async (proc) => {
        expect(await diffAgainst(proc, r, { name: "pg-copied", vlanId: 200 })).toEqual({ changes: "some", replaces: [], deleteBeforeReplace: false });
        expect(await diffAgainst(proc, r, { name: "pg-copied-2", vlanId: 100 })).toEqual({ changes: "some", replaces: ["name"], deleteBeforeReplace: true });
      });
      ok(await s.destroy());
    } finally {
      host.cleanup();
    }
  });
});

/**
 * A program folder like the package copy's whose @pulumi/pulumi is the project's but for
 * the dynamic-provider host, changed to hand over a copy of `replaces`
 * (`[...result.replaces]`): the patch would not see the marker there.
 */
function hostWithCopiedReplaces(): { dir: string; cleanup(): void } {
  const root = mkdtempSync(join(tmpdir(), "other-host-"));
  const modules = join(root, "node_modules");
  const pulumiDir = join(modules, "@pulumi", "pulumi");
  const realPulumi = join(PROJECT_ROOT, "node_modules", "@pulumi", "pulumi");
  mkdirSync(join(pulumiDir, "cmd", "dynamic-provider"), { recursive: true });
  for (const e of readdirSync(join(pkg.dir, "node_modules"))) if (e !== "@pulumi") symlinkSync(join(pkg.dir, "node_modules", e), join(modules, e));
  for (const e of readdirSync(join(PROJECT_ROOT, "node_modules", "@pulumi"))) if (e !== "pulumi") symlinkSync(join(PROJECT_ROOT, "node_modules", "@pulumi", e), join(modules, "@pulumi", e));
  for (const e of readdirSync(realPulumi)) if (e !== "cmd") symlinkSync(join(realPulumi, e), join(pulumiDir, e));
  for (const e of readdirSync(join(realPulumi, "cmd"))) if (e !== "dynamic-provider") symlinkSync(join(realPulumi, "cmd", e), join(pulumiDir, "cmd", e));
  const hostDir = join(realPulumi, "cmd", "dynamic-provider");
  for (const e of readdirSync(hostDir)) if (e !== "index.js") symlinkSync(join(hostDir, e), join(pulumiDir, "cmd", "dynamic-provider", e));
  const stock = readFileSync(join(hostDir, "index.js"), "utf8");
  const changed = stock.replace("resp.setReplacesList(result.replaces);", "resp.setReplacesList([...result.replaces]);");
  expect(changed).not.toBe(stock);
  writeFileSync(join(pulumiDir, "cmd", "dynamic-provider", "index.js"), changed);
  writeFileSync(join(root, "package.json"), `${JSON.stringify({ name: "other-host", private: true })}\n`);
  return { dir: root, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}
