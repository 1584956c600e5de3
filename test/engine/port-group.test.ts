// PortGroup end to end: program -> serialized dynamic provider -> the real
// dynamic-provider process -> driver -> the simulator.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import { findCluster, listVms } from "../../provider/vsphere/inventory.js";
import {
  findNetwork,
  getDistributedPortGroup,
  getHostNetworking,
  networkVms,
  reconfigureDistributedPortGroup,
  removeStandardPortGroup,
  updateStandardPortGroup,
  type HostNetworking,
} from "../../provider/vsphere/network.js";
import { MoRef } from "../../provider/vsphere/soap/xml.js";
import { runTask } from "../../provider/vsphere/task.js";
import { simOptions } from "../support/clients.js";
import { PROJECT_ROOT } from "../vcsim/build.mjs";
import { startVcsim, type Vcsim } from "../vcsim/index.js";
import { HarnessStack, simulatorConfig, simulatorStack } from "./index.js";
import { buildPackageCopy } from "./package-copy.js";

const PASSWORD = "pw-Quick-7f3a";
let sim: Vcsim;
let client: VimClient;
let dir: string;

beforeAll(async () => {
  sim = await startVcsim({ tls: true, hosts: 3, vms: 3, powerOn: false, password: PASSWORD });
  client = await VimClient.connect(simOptions(sim));
  dir = mkdtempSync(join(tmpdir(), "harness-"));
});
afterAll(async () => {
  await client?.close();
  await sim?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function baseConfig(): Record<string, string> {
  return simulatorConfig(sim, PASSWORD);
}

function stack(name: string, config: Record<string, string> = {}): HarnessStack {
  return simulatorStack(sim, { dir, name, password: PASSWORD, config });
}

async function hostsWith(name: string): Promise<Array<{ host: string; vlanId: number; vswitch: string; net: HostNetworking }>> {
  const cluster = await findCluster(client, "DC0_C0");
  const nets = await getHostNetworking(client, cluster.hosts);
  return nets.flatMap((n) => n.portgroups.filter((p) => p.name === name).map((p) => ({ host: n.hostName, vlanId: p.vlanId, vswitch: p.vswitchName, net: n })));
}

describe("PortGroup through the dynamic-provider process", () => {
  it("creates, leaves alone, updates the VLAN, sees drift on refresh, repairs it, and destroys", async () => {
    const s = stack("lifecycle", { "pgtest:name": "pg-life", "pgtest:vlanId": "100" });

    const first = await s.up();
    expect(first.errors).toEqual([]);
    expect(first.events.map((e) => e.op)).toEqual(["create"]);
    expect((await hostsWith("pg-life")).map((h) => [h.host, h.vlanId, h.vswitch])).toEqual([
      ["DC0_C0_H0", 100, "vSwitch0"],
      ["DC0_C0_H1", 100, "vSwitch0"],
      ["DC0_C0_H2", 100, "vSwitch0"],
    ]);
    expect(first.outputs.standardHosts).toEqual(["DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2"]);
    expect(String(first.outputs.standardNetwork)).toMatch(/^Network:/);
    const [resource] = s.state().resources;
    expect(resource!.type).toBe("pulumi-nodejs:dynamic/vmware:PortGroup");

    const again = await s.up();
    expect(again.events.map((e) => e.op)).toEqual(["same"]);

    const changed = await s.up({ ...s.opts.config, "pgtest:vlanId": "200" });
    expect(changed.events.map((e) => e.op)).toEqual(["update"]);
    expect((await hostsWith("pg-life")).map((h) => h.vlanId)).toEqual([200, 200, 200]);

    // Drift made outside Pulumi: another VLAN on one host, gone from another.
    const [h0, , h2] = await hostsWith("pg-life");
    await updateStandardPortGroup(client, h0!.net.networkSystem, { name: "pg-life", vlanId: 300, vswitchName: "vSwitch0" });
    await removeStandardPortGroup(client, h2!.net.networkSystem, "pg-life");
    const refreshed = await s.refresh();
    // Each host as it is: the state does not pretend H0's VLAN is every host's.
    expect(refreshed.events).toEqual([
      {
        op: "drift",
        key: "pulumi-nodejs:dynamic/vmware:PortGroup::standard",
        changed: {
          hosts: { from: ["DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2"], to: ["DC0_C0_H0", "DC0_C0_H1"] },
          missingHosts: { from: [], to: ["DC0_C0_H2"] },
          hostSwitches: { from: { DC0_C0_H0: "vSwitch0", DC0_C0_H1: "vSwitch0", DC0_C0_H2: "vSwitch0" }, to: { DC0_C0_H0: "vSwitch0", DC0_C0_H1: "vSwitch0" } },
          hostVlans: { from: { DC0_C0_H0: 200, DC0_C0_H1: 200, DC0_C0_H2: 200 }, to: { DC0_C0_H0: 300, DC0_C0_H1: 200 } },
        },
      },
    ]);
    const repaired = await s.up({ ...s.opts.config, "pgtest:vlanId": "200" });
    expect(repaired.events.map((e) => e.op)).toEqual(["update"]);
    expect((await hostsWith("pg-life")).map((h) => [h.host, h.vlanId])).toEqual([
      ["DC0_C0_H0", 200],
      ["DC0_C0_H1", 200],
      ["DC0_C0_H2", 200],
    ]);

    const network = MoRef.parse(String(s.state().resources[0]!.outputs.networkId));
    const gone = await s.destroy();
    expect(gone.events.map((e) => e.op)).toEqual(["delete"]);
    expect(await hostsWith("pg-life")).toEqual([]);
    expect(s.state().resources).toEqual([]);
    // With its last host, the port group's Network object goes too.
    expect(await findNetwork(client, (await findCluster(client, "DC0_C0")).datacenter, "pg-life")).toBeUndefined();
    expect(await networkVms(client, network)).toEqual([]);
  });

  it("converges every host when hosts disagree: one host's VLAN changed outside, then up with that VLAN", async () => {
    const s = stack("mixed", { "pgtest:name": "pg-mixed", "pgtest:vlanId": "200" });
    expect((await s.up()).errors).toEqual([]);
    const [h0] = await hostsWith("pg-mixed");
    await updateStandardPortGroup(client, h0!.net.networkSystem, { name: "pg-mixed", vlanId: 300, vswitchName: "vSwitch0" });

    const refreshed = await s.refresh();
    expect(refreshed.events[0]?.changed).toEqual({
      hostVlans: { from: { DC0_C0_H0: 200, DC0_C0_H1: 200, DC0_C0_H2: 200 }, to: { DC0_C0_H0: 300, DC0_C0_H1: 200, DC0_C0_H2: 200 } },
    });
    // The input now says 300: two hosts still differ, so this is an update, not "same".
    const up = await s.up({ ...s.opts.config, "pgtest:vlanId": "300" });
    expect(up.errors).toEqual([]);
    expect(up.events.map((e) => e.op)).toEqual(["update"]);
    expect((await hostsWith("pg-mixed")).map((h) => [h.host, h.vlanId])).toEqual([
      ["DC0_C0_H0", 300],
      ["DC0_C0_H1", 300],
      ["DC0_C0_H2", 300],
    ]);
    expect(up.outputs.standardHostVlans).toEqual({ DC0_C0_H0: 300, DC0_C0_H1: 300, DC0_C0_H2: 300 });
    expect((await s.up({ ...s.opts.config, "pgtest:vlanId": "300" })).events.map((e) => e.op)).toEqual(["same"]);
    await s.destroy();
  });

  it("changes only the VLAN: a host's security and teaming overrides survive a VLAN update", async () => {
    const s = stack("policy", { "pgtest:name": "pg-policy", "pgtest:vlanId": "100" });
    expect((await s.up()).errors).toEqual([]);
    const [, h1] = await hostsWith("pg-policy");
    const policy = {
      security: { allowPromiscuous: true, macChanges: false, forgedTransmits: false },
      nicTeaming: { policy: "failover_explicit", notifySwitches: false },
    };
    await updateStandardPortGroup(client, h1!.net.networkSystem, { name: "pg-policy", vlanId: 100, vswitchName: "vSwitch0", policy });

    const up = await s.up({ ...s.opts.config, "pgtest:vlanId": "101" });
    expect(up.events.map((e) => e.op)).toEqual(["update"]);
    const after = await hostsWith("pg-policy");
    expect(after.map((h) => h.vlanId)).toEqual([101, 101, 101]);
    const kept = after[1]!.net.portgroups.find((p) => p.name === "pg-policy")!.policy;
    expect(kept).toMatchObject({
      security: { allowPromiscuous: "true", macChanges: "false", forgedTransmits: "false" },
      nicTeaming: { policy: "failover_explicit", notifySwitches: "false" },
    });
    await s.destroy();
  });

  it("manages a distributed port group with ephemeral binding, and replaces both kinds on a rename", async () => {
    const s = stack("dv", { "pgtest:name": "pg-for-dv", "pgtest:distributed": "true", "pgtest:dvVlanId": "210" });
    const up = await s.up();
    expect(up.errors).toEqual([]);
    const ref = MoRef.parse(String(up.outputs.distributedNetwork));
    expect(ref.type).toBe("DistributedVirtualPortgroup");
    expect(await getDistributedPortGroup(client, ref)).toMatchObject({ name: "pg-distributed", vlanId: 210, binding: "ephemeral" });

    const vlan = await s.up({ ...s.opts.config, "pgtest:dvVlanId": "211" });
    expect(vlan.events.find((e) => e.key.endsWith("::distributed"))?.op).toBe("update");
    expect((await getDistributedPortGroup(client, ref))?.vlanId).toBe(211);

    const renamed = await s.up({ ...s.opts.config, "pgtest:dvVlanId": "211", "pgtest:name": "pg-for-dv-2", "pgtest:dvName": "pg-distributed-2" });
    expect(renamed.errors).toEqual([]);
    expect(renamed.events.find((e) => e.key.endsWith("::standard"))).toMatchObject({ op: "replace", replaces: ["name"] });
    expect(renamed.events.find((e) => e.key.endsWith("::distributed"))).toMatchObject({ op: "replace", replaces: ["name"] });
    expect(await hostsWith("pg-for-dv")).toEqual([]);
    expect(await hostsWith("pg-for-dv-2")).toHaveLength(3);
    // The distributed one is a new port group: the old one is gone, the new one has the new name and the VLAN.
    const renamedRef = MoRef.parse(String(renamed.outputs.distributedNetwork));
    expect(renamedRef.equals(ref)).toBe(false);
    expect(await getDistributedPortGroup(client, ref)).toBeUndefined();
    expect(await getDistributedPortGroup(client, renamedRef)).toMatchObject({ name: "pg-distributed-2", vlanId: 211, binding: "ephemeral" });

    await s.destroy();
    expect(await getDistributedPortGroup(client, renamedRef)).toBeUndefined();
    expect(await hostsWith("pg-for-dv-2")).toEqual([]);
  });

  it("sees a distributed port group's binding changed outside on refresh, and changes it back in place", async () => {
    const s = stack("dv-binding", { "pgtest:name": "pg-dvb-std", "pgtest:distributed": "true", "pgtest:dvName": "pg-dvb", "pgtest:dvVlanId": "220" });
    const up = await s.up();
    expect(up.errors).toEqual([]);
    const ref = MoRef.parse(String(up.outputs.distributedNetwork));
    await reconfigureDistributedPortGroup(client, (await getDistributedPortGroup(client, ref))!, { binding: "static" });

    const refreshed = await s.refresh();
    expect(refreshed.events.find((e) => e.key.endsWith("::distributed"))?.changed).toEqual({ portBinding: { from: "ephemeral", to: "static" } });
    const repaired = await s.up();
    expect(repaired.events.find((e) => e.key.endsWith("::distributed"))?.op).toBe("update");
    expect(await getDistributedPortGroup(client, ref)).toMatchObject({ name: "pg-dvb", vlanId: 220, binding: "ephemeral" });

    // Asked for "static": changed in place, the same port group.
    const toStatic = await s.up({ ...s.opts.config, "pgtest:dvBinding": "static" });
    expect(toStatic.events.find((e) => e.key.endsWith("::distributed"))?.op).toBe("update");
    expect(await getDistributedPortGroup(client, ref)).toMatchObject({ vlanId: 220, binding: "earlyBinding" });
    await s.destroy();
  });

  it("puts standard port groups on the vSwitch of vmware:vlanInterface, as Nova's VlanManager", async () => {
    const s = stack("vlan-if", { "pgtest:name": "pg-vmnic1", "vmware:vlanInterface": "vmnic1" });
    expect((await s.up()).errors).toEqual([]);
    expect((await hostsWith("pg-vmnic1")).map((h) => h.vswitch)).toEqual(["vSwitch1", "vSwitch1", "vSwitch1"]);
    // Naming the vSwitch it is on already changes nothing; naming another moves it (a replacement).
    expect((await s.up({ ...s.opts.config, "pgtest:switch": "vSwitch1" })).events.map((e) => e.op)).toEqual(["same"]);
    const moved = await s.up({ ...s.opts.config, "pgtest:switch": "vSwitch0" });
    expect(moved.errors).toEqual([]);
    expect(moved.events).toMatchObject([{ op: "replace", replaces: ["switch"] }]);
    expect((await hostsWith("pg-vmnic1")).map((h) => h.vswitch)).toEqual(["vSwitch0", "vSwitch0", "vSwitch0"]);
    await s.destroy();
  });

  it("names the port group after vmware:flatNetworkBridge when no name is given (Nova's flat network)", async () => {
    const s = stack("flat", { "pgtest:defaultName": "true", "vmware:flatNetworkBridge": "br-flat" });
    const up = await s.up();
    expect(up.errors).toEqual([]);
    expect((await hostsWith("br-flat")).map((h) => h.host)).toEqual(["DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2"]);
    await s.destroy();
    expect(await hostsWith("br-flat")).toEqual([]);
  });

  it("stops bad input at check time, naming the property, the value and what is accepted, and touches nothing", async () => {
    const cases: Array<[Record<string, string>, string, RegExp]> = [
      [{ "pgtest:vlanId": "5000" }, "vlanId", /PortGroup\.vlanId = 5000: want 0 to 4094/],
      [{ "pgtest:switch": "vSwitchX" }, "switch", /host DC0_C0_H0 has no vSwitch "vSwitchX" \(it has: vSwitch0, vSwitch1\)/],
      [{ "vmware:clusterName": "nope" }, "clusterName", /cluster "nope" not found \(there are: DC0_C0 \(DC0\)\)/],
      [{ "pgtest:distributed": "true", "pgtest:dvs": "DVS9" }, "switch", /distributed switch "DVS9" not found \(there are: DVS0 \(DC0\)\)/],
      [{ "pgtest:distributed": "true", "pgtest:dvDatacenter": "DC9" }, "datacenter", /datacenter "DC9" not found \(there are: DC0\)/],
    ];
    for (const [config, property, reason] of cases) {
      const s = stack(`bad-${property}-${Date.now()}`, { "pgtest:name": "pg-bad", ...config });
      const res = await s.up();
      const failed = res.events.find((e) => e.op === "check-failed");
      expect(failed?.failures).toEqual(expect.arrayContaining([{ property, reason: expect.stringMatching(reason) }]));
      expect(res.errors.join("\n")).toContain(property);
      // The resource that failed its check was not created.
      expect(res.events.some((e) => e.op === "create" && e.key === failed!.key)).toBe(false);
      if (failed!.key.endsWith("::standard")) expect(await hostsWith("pg-bad")).toEqual([]);
      await s.destroy();
      expect(await hostsWith("pg-bad")).toEqual([]);
    }
  });

  it("refuses to delete while a VM uses it, unless forceDelete", async () => {
    const s = stack("in-use", { "pgtest:name": "pg-in-use" });
    const up = await s.up();
    expect(up.errors).toEqual([]);
    const network = MoRef.parse(String(up.outputs.standardNetwork));
    const [vm] = await listVms(client, client.serviceContent.rootFolder);
    await runTask(client, "ReconfigVM_Task", vm!.ref, {
      spec: {
        deviceChange: [
          {
            operation: "add",
            device: {
              $type: "VirtualVmxnet3",
              key: -1,
              backing: { $type: "VirtualEthernetCardNetworkBackingInfo", deviceName: "pg-in-use", network },
              connectable: { startConnected: true, allowGuestControl: true, connected: false },
              addressType: "generated",
            },
          },
        ],
      },
    });
    const refused = await s.destroy();
    expect(refused.errors.join("\n")).toMatch(new RegExp(`port group "pg-in-use" is used by 1 VM \\(${vm!.name}\\): .*forceDelete: true`));
    expect(await hostsWith("pg-in-use")).toHaveLength(3);
    expect(s.state().resources).toHaveLength(1);

    // A state without networkId (vCenter had not listed the Network yet): the check still runs, by name.
    const state = s.state();
    delete state.resources[0]!.outputs.networkId;
    writeFileSync(s.opts.stateFile, JSON.stringify(state));
    const stillRefused = await s.destroy();
    expect(stillRefused.errors.join("\n")).toMatch(/port group "pg-in-use" is used by 1 VM/);
    expect(await hostsWith("pg-in-use")).toHaveLength(3);
    // Refresh looks it up again.
    expect((await s.refresh()).events[0]?.changed).toEqual({ networkId: { from: undefined, to: network.toString() } });

    const forced = await s.up({ ...s.opts.config, "pgtest:forceDelete": "true" });
    expect(forced.events.map((e) => e.op)).toEqual(["update"]);
    const done = await s.destroy();
    expect(done.errors).toEqual([]);
    expect(await hostsWith("pg-in-use")).toEqual([]);
  });

  it("reads again, instead of trusting what check read, when a host call proves it stale", async () => {
    const s = stack("stale", { "pgtest:name": "pg-stale", "pgtest:vlanId": "40" });
    expect((await s.up()).errors).toEqual([]);
    // The host says the port group is not there (as if removed after check read it).
    await sim.control.addRule({ kind: "fault", method: "UpdatePortGroup", nth: 1, fault: "NotFound", message: "gone meanwhile" });
    try {
      await sim.control.resetStats();
      const up = await s.up({ ...s.opts.config, "pgtest:vlanId": "41" });
      expect(up.errors).toEqual([]);
      expect(up.events.map((e) => e.op)).toEqual(["update"]);
      const { methods } = await sim.control.stats();
      expect(methods.RetrievePropertiesEx).toBe(2); // check's read, then a fresh one after the NotFound
      expect(methods.UpdatePortGroup).toBe(4); // three, and the one that failed again
      expect((await hostsWith("pg-stale")).map((h) => h.vlanId)).toEqual([41, 41, 41]);
    } finally {
      await sim.control.clearRules();
    }
    await s.destroy();
  });

  it("stores the Network even when vCenter lists it a moment after the hosts have the port group", async () => {
    await sim.control.addRule({ kind: "lateNetwork", ms: 1200 });
    try {
      const s = stack("late-network", { "pgtest:name": "pg-late" });
      const up = await s.up();
      expect(up.errors).toEqual([]);
      expect(String(up.outputs.standardNetwork)).toMatch(/^Network:network-\d+$/);
      expect(s.state().resources[0]!.outputs.networkId).toBe(up.outputs.standardNetwork);
      expect((await s.destroy()).errors).toEqual([]);
      expect(await hostsWith("pg-late")).toEqual([]);
    } finally {
      await sim.control.clearRules();
    }
  });

  it("leaves nothing behind when adding fails on one host", async () => {
    await sim.control.addRule({ kind: "fault", method: "AddPortGroup", nth: 3, fault: "HostConfigFault", message: "host refused" });
    try {
      const s = stack("rollback", { "pgtest:name": "pg-rollback" });
      const res = await s.up();
      expect(res.errors.join("\n")).toMatch(/port group "pg-rollback" could not be added on DC0_C0_H\d .*host refused.*removed again/);
      expect(await hostsWith("pg-rollback")).toEqual([]);
      expect(s.state().resources).toEqual([]);
    } finally {
      await sim.control.clearRules();
    }
  });
});

describe("the serialized provider", () => {
  it("is small, holds no secret, names no local path, and is the same after a rebuild", async () => {
    // Two fresh builds, each in a folder of its own with a copy of the program (dist/
    // stays as it is while other test files load it). In the project folder tsx would
    // map the package to its TypeScript source (tsconfig paths); a copy outside it
    // uses the build, as a user's program does.
    const base = stack("serialized", { "pgtest:name": "pg-serial" });
    const builds = [buildPackageCopy(base.opts.program), buildPackageCopy(base.opts.program)] as const;
    try {
      const [first, second] = builds.map((b) => new HarnessStack({ ...base.opts, cwd: b.dir, program: b.program }));
      for (const b of builds) {
        expect(createRequire(join(b.dir, "package.json")).resolve("pulumi-vmware-vcenter")).toBe(join(b.dir, "node_modules", "pulumi-vmware-vcenter", "dist", "index.js"));
      }
      expect((await first!.up()).errors).toEqual([]);
      const before = String(first!.state().resources[0]!.outputs.__provider);
      expect(before.length).toBeGreaterThan(100);
      expect(Buffer.byteLength(before)).toBeLessThan(16 * 1024);
      expect(before).not.toContain(PASSWORD);
      expect(before).not.toContain(sim.info.host + ":");
      expect(before).not.toContain(PROJECT_ROOT);
      for (const b of builds) expect(before).not.toContain(b.dir);
      expect(before).toContain(`"pulumi-vmware-vcenter/handler"`);

      const again = await second!.up();
      expect(again.errors).toEqual([]);
      expect(again.events.map((e) => e.op)).toEqual(["same"]);
      expect(String(second!.state().resources[0]!.inputs.__provider)).toBe(before);
      expect((await second!.destroy()).errors).toEqual([]);
    } finally {
      for (const b of builds) b.cleanup();
    }
  });
});
