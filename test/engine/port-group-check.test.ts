// PortGroup's check, diff and read as the engine drives them, through the real
// dynamic-provider process: unknown inputs at preview, misspelt inputs, a name
// that exists already, and import (read by id with no prior state).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stripProvider } from "../../provider/resources/check.js";
import { UNKNOWN } from "../../provider/resources/handler-types.js";
import { VimClient } from "../../provider/vsphere/client.js";
import { findCluster } from "../../provider/vsphere/inventory.js";
import {
  addStandardPortGroup,
  createDistributedPortGroup,
  getDistributedPortGroup,
  getDistributedSwitch,
  getHostNetworking,
  updateStandardPortGroup,
  type HostNetworking,
  type StandardPortGroupSpec,
} from "../../provider/vsphere/network.js";
import { simOptions } from "../support/clients.js";
import { PROJECT_ROOT } from "../vcsim/build.mjs";
import { startVcsim, type Vcsim } from "../vcsim/index.js";
import { HarnessStack, simulatorConfig, simulatorStack } from "./index.js";
import { DynamicProviderProcess } from "./provider-process.js";

const PASSWORD = "pw-Check-41b2";
let sim: Vcsim;
let client: VimClient;
let dir: string;

beforeAll(async () => {
  sim = await startVcsim({ tls: true, hosts: 3, vms: 0, password: PASSWORD });
  client = await VimClient.connect(simOptions(sim));
  dir = mkdtempSync(join(tmpdir(), "pg-check-"));
});
afterAll(async () => {
  await client?.close();
  await sim?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function config(extra: Record<string, string> = {}): Record<string, string> {
  return { ...simulatorConfig(sim, PASSWORD), ...extra };
}

function stack(name: string, program: string, extra: Record<string, string>): HarnessStack {
  return simulatorStack(sim, { dir, name, program, password: PASSWORD, config: extra });
}

/** Runs `fn` with a dynamic-provider process configured with the stack config. */
async function withProvider<T>(cfg: Record<string, string>, fn: (p: DynamicProviderProcess) => Promise<T>): Promise<T> {
  const proc = await DynamicProviderProcess.start(PROJECT_ROOT);
  try {
    await proc.configure(cfg);
    return await fn(proc);
  } finally {
    await proc.stop();
  }
}

describe("unknown inputs at preview", () => {
  it("stay unknown through check and diff: no default over them, no replacement that will not happen", async () => {
    const s = stack("unknowns", "test/engine/programs/unknown-inputs.ts", { "ui:targetName": "pg-ui-target", "ui:targetVlan": "30", "ui:sourceName": "pg-ui-source" });
    expect((await s.up()).errors).toEqual([]);
    const [target] = s.state().resources;

    // The provider itself: check keeps the unknowns, diff says it cannot tell and replaces nothing.
    await withProvider(s.opts.config, async (proc) => {
      const news = { ...target!.inputs, name: UNKNOWN, vlanId: UNKNOWN };
      const checked = await proc.check(target!.urn, target!.inputs, news);
      expect(checked.failures).toEqual([]);
      expect(checked.inputs.name).toBe(UNKNOWN);
      expect(checked.inputs.vlanId).toBe(UNKNOWN);
      expect(await proc.diff(target!.urn, target!.id, target!.outputs, checked.inputs)).toEqual({ changes: "unknown", replaces: [], deleteBeforeReplace: false });
    });

    // A program whose target takes its name and VLAN from a new resource's output.
    const cfg = { ...s.opts.config, "ui:withSource": "true" };
    const preview = await s.preview(cfg);
    expect(preview.errors).toEqual([]);
    expect(preview.events.find((e) => e.key.endsWith("::source"))).toMatchObject({ op: "create", preview: true });
    const planned = preview.events.find((e) => e.key.endsWith("::target"));
    expect(planned?.op).toBe("update"); // the engine's own comparison: the inputs are not known to be the same
    expect(planned?.replaces).toBeUndefined();

    // Once known, they are the same name and VLAN: nothing to do.
    const up = await s.up(cfg);
    expect(up.errors).toEqual([]);
    expect(up.events.find((e) => e.key.endsWith("::target"))?.op).toBe("same");
    expect((await s.destroy()).errors).toEqual([]);
  });
});

describe("check", () => {
  it("fails a misspelt input with the closest valid name", async () => {
    const cases: Array<[string, string, RegExp]> = [
      ["vlanid", "7", /PortGroup has no input "vlanid"; did you mean "vlanId"\?/],
      ["portbinding", "static", /did you mean "portBinding"\?/],
      ["clustername", "DC0_C0", /did you mean "clusterName"\?/],
      ["colour", "blue", /PortGroup has no input "colour" \(inputs: name, vlanId,/],
    ];
    for (const [key, value, reason] of cases) {
      const s = stack(`typo-${key}`, "test/engine/programs/single.ts", { "pg:name": "pg-typo", "pg:extraKey": key, "pg:extraValue": value });
      const res = await s.preview();
      expect(res.events).toEqual([{ op: "check-failed", key: "pulumi-nodejs:dynamic/vmware:PortGroup::pg", failures: [{ property: key, reason: expect.stringMatching(reason) }] }]);
    }
  });

  it("fails at preview a standard name some host has already, naming the hosts and its id; adopt: true takes it over", async () => {
    const cluster = await findCluster(client, "DC0_C0");
    const nets = await getHostNetworking(client, cluster.hosts);
    const h1 = nets.find((n) => n.hostName === "DC0_C0_H1")!;
    const policy = { security: { allowPromiscuous: true } };
    await updateOrAdd(h1, { name: "pg-taken", vlanId: 5, vswitchName: "vSwitch0", policy });
    const id = `standard:${cluster.ref.value}:pg-taken`;
    const s = stack("taken", "test/engine/programs/single.ts", { "pg:name": "pg-taken", "pg:vlanId": "6" });
    const res = await s.preview();
    expect(res.events).toEqual([
      {
        op: "check-failed",
        key: "pulumi-nodejs:dynamic/vmware:PortGroup::pg",
        failures: [{ property: "name", reason: expect.stringContaining(`port group "pg-taken" already exists on DC0_C0_H1 (cluster DC0_C0)`) }],
      },
    ]);
    expect(res.errors.join("\n")).toContain(`set adopt: true to take it over (its id is "${id}")`);

    // Read by id, with nothing but the provider (what an import would do).
    const read = await withProvider(s.opts.config, async (p) => p.read("urn:pulumi:dev::p::pulumi-nodejs:dynamic/vmware:PortGroup::pg", id, { __provider: await providerString() }, {}));
    expect(read.id).toBe(id);
    expect(stripProvider(read.props)).toEqual({
      name: "pg-taken",
      vlanId: 5,
      kind: "standard",
      clusterName: "DC0_C0",
      datacenter: "DC0",
      forceDelete: false,
      hosts: ["DC0_C0_H1"],
      missingHosts: ["DC0_C0_H0", "DC0_C0_H2"],
      hostSwitches: { DC0_C0_H1: "vSwitch0" },
      hostVlans: { DC0_C0_H1: 5 },
      networkId: expect.stringMatching(/^Network:/),
    });

    // Adopted: every host has it with the input's VLAN, and H1 keeps its policy.
    const adopted = await s.up({ ...s.opts.config, "pg:adopt": "true" });
    expect(adopted.errors).toEqual([]);
    expect(adopted.events).toMatchObject([{ op: "create", id }]);
    expect(adopted.outputs.hostVlans).toEqual({ DC0_C0_H0: 6, DC0_C0_H1: 6, DC0_C0_H2: 6 });
    const after = await getHostNetworking(client, cluster.hosts);
    expect(after.find((n) => n.hostName === "DC0_C0_H1")!.portgroups.find((p) => p.name === "pg-taken")!.policy).toMatchObject({ security: { allowPromiscuous: "true" } });
    expect((await s.destroy()).errors).toEqual([]);
    expect((await getHostNetworking(client, cluster.hosts)).some((n) => n.portgroups.some((p) => p.name === "pg-taken"))).toBe(false);
  });

  it("fails at preview a distributed name the switch has already, with its id; adopt: true takes it over", async () => {
    const dvs = await getDistributedSwitch(client, (await findCluster(client, "DC0_C0")).datacenter, "DVS0");
    const pg = await createDistributedPortGroup(client, dvs, { name: "pg-dv-taken", vlanId: 44, binding: "static" });
    const s = stack("dv-taken", "test/engine/programs/single.ts", { "pg:name": "pg-dv-taken", "pg:kind": "distributed", "pg:switch": "DVS0", "pg:vlanId": "45" });
    const res = await s.preview();
    expect(res.events[0]).toMatchObject({ op: "check-failed", failures: [{ property: "name", reason: expect.stringContaining(`set adopt: true to take it over (its id is "${pg.ref.toString()}")`) }] });

    const read = await withProvider(s.opts.config, async (p) =>
      p.read("urn:pulumi:dev::p::pulumi-nodejs:dynamic/vmware:PortGroup::pg", pg.ref.toString(), { __provider: await providerString() }, {}),
    );
    expect(stripProvider(read.props)).toEqual({
      name: "pg-dv-taken",
      vlanId: 44,
      kind: "distributed",
      switch: "DVS0",
      datacenter: "DC0",
      portBinding: "static",
      forceDelete: false,
      hostSwitches: {},
      hostVlans: {},
      hosts: [],
      missingHosts: [],
      networkId: pg.ref.toString(),
      switchUuid: dvs.uuid,
      portgroupKey: pg.key,
    });

    const adopted = await s.up({ ...s.opts.config, "pg:adopt": "true" });
    expect(adopted.errors).toEqual([]);
    expect(adopted.events).toMatchObject([{ op: "create", id: pg.ref.toString() }]);
    expect(await getDistributedPortGroup(client, pg.ref)).toMatchObject({ name: "pg-dv-taken", vlanId: 45, binding: "ephemeral" });
    expect((await s.destroy()).errors).toEqual([]);
    expect(await getDistributedPortGroup(client, pg.ref)).toBeUndefined();
  });

  it("cannot be imported by the engine yet: the dynamic-provider process reads without the provider (pulumi/pulumi#3550)", async () => {
    // What the engine sends for `pulumi import` or the `import` option: no properties, so no __provider.
    // When this starts to work, the read-by-id above is ready for it.
    await expect(withProvider(config(), (p) => p.read("urn:pulumi:dev::p::pulumi-nodejs:dynamic/vmware:PortGroup::pg", "standard:domain-c7:x", {}, {}))).rejects.toThrow(
      /code must be a string/,
    );
  });

  it("reads what create wrote, by id alone, for both kinds", async () => {
    const std = stack("roundtrip-std", "test/engine/programs/single.ts", { "pg:name": "pg-import-std", "pg:vlanId": "61" });
    const dv = stack("roundtrip-dv", "test/engine/programs/single.ts", { "pg:name": "pg-import-dv", "pg:kind": "distributed", "pg:switch": "DVS0", "pg:vlanId": "62" });
    for (const s of [std, dv]) {
      expect((await s.up()).errors).toEqual([]);
      const [r] = s.state().resources;
      const read = await withProvider(s.opts.config, (p) => p.read(r!.urn, r!.id, { __provider: r!.outputs.__provider }, {}));
      expect(read.id).toBe(r!.id);
      expect(stripProvider(read.props)).toEqual(stripProvider(r!.outputs));
      expect((await s.destroy()).errors).toEqual([]);
    }
  });
});

/** Puts a port group on one host outside Pulumi, with a policy of its own. */
async function updateOrAdd(h: HostNetworking, spec: StandardPortGroupSpec): Promise<void> {
  await addStandardPortGroup(client, h.networkSystem, { ...spec, policy: undefined });
  await updateStandardPortGroup(client, h.networkSystem, spec);
}

let provider: string | undefined;
/** The serialized provider, as a program's state holds it (made once by a throwaway stack). */
async function providerString(): Promise<string> {
  if (provider) return provider;
  const s = stack("provider", "test/engine/programs/single.ts", { "pg:name": "pg-provider" });
  expect((await s.up()).errors).toEqual([]);
  provider = String(s.state().resources[0]!.outputs.__provider);
  expect((await s.destroy()).errors).toEqual([]);
  return provider;
}
