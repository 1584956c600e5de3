// Round trips per PortGroup operation, counted by the simulator's per-method
// statistics through the real dynamic-provider process (one process per
// operation, as with the CLI). Session calls (service content, login, logout)
// are left out: they are the same for every operation.
//
// The least the API allows, on a cluster of 3 hosts:
// - standard create (check + create): 5 = one property-collector traversal from
//   the root folder to the cluster's hosts and their networking, AddPortGroup on
//   each host (3, in parallel), one read of the hosts' networks for the new
//   Network object;
// - distributed create (check + create): 3 = one traversal to the switches,
//   AddDVPortgroup_Task, one read of the task's state with the switch's port groups;
// - refresh of a standard port group: 1 = one traversal (hosts, their networks);
// - VLAN update of a standard port group (check + update): 4 = one traversal,
//   UpdatePortGroup on each host;
// - delete of a standard port group, with the in-use check: 4 = one read of the
//   hosts and of the VMs on the network, RemovePortGroup on each host;
// - refresh of a distributed port group: 1 = one traversal to the switches and
//   their port groups (it finds the switch's name and datacenter with it);
// - VLAN update of a distributed port group (check + update): 3 = one traversal,
//   ReconfigureDVPortgroup_Task, one read of the task;
// - delete of a distributed port group, with the in-use check: 3 = one read of
//   its VMs, Destroy_Task, one read of the task;
// - up with nothing to change: 1 (check reads the cluster or switch once; the
//   API would allow 0, but check validates the inputs against vCenter).
// - Image create from a sparse VMDK (check + create): 15 = check: the cluster (one
//   traversal, kept for create; the datacenter's path for /folder comes with it) and the
//   datastore choice (one read); create: the choice again (free space now, and the
//   datastores' browsers with it), a search of the cache (task + its read), the staging
//   folder, the upload (HTTP; the sparse file beside the folder that is published),
//   CopyVirtualDisk_Task into a flat disk (2), the cache folder, MoveDatastoreFile_Task
//   into the cache and DeleteDatastoreFile_Task of staging, the sparse file with it
//   (2 each), the holder marker (HTTP), a listing of the cached files for their sizes (2);
// - Image up with nothing to change: 0 = the source's size and time are unchanged
//   and it is not being placed anew, so check asks vCenter nothing (and no file is
//   read past its first bytes);
// - Image refresh: 3 = the datacenter with its datastores' browsers (one traversal), a
//   search of the cache folder and its read (Nova's cache-hit test costs 3 too);
// - Image delete: 6 = the datacenter with its datastores' browsers, one listing (holders
//   and disks; the search and its read), one read of every VM's disk chains,
//   DeleteDatastoreFile_Task of the folder and its read.
// Each operation must stay within one call of that.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ImageDir } from "../support/images.js";
import { startVcsim, type SimulatorStats, type Vcsim } from "../vcsim/index.js";
import { HarnessStack, type HarnessResult , simulatorStack } from "./index.js";

const PASSWORD = "pw-Rt-5c1d";
const SESSION_METHODS = new Set(["RetrieveServiceContent", "Login", "Logout", "SessionIsActive", "CurrentTime"]);
let sim: Vcsim;
let dir: string;
const measured: Record<string, { calls: number; least: number; methods: Record<string, number> }> = {};

beforeAll(async () => {
  sim = await startVcsim({ tls: true, hosts: 3, vms: 1, powerOn: false, password: PASSWORD });
  dir = mkdtempSync(join(tmpdir(), "round-trips-"));
});
afterAll(async () => {
  // The table the report quotes (bench/ keeps the comparison).
  console.log(JSON.stringify(measured, null, 1));
  await sim?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function stack(name: string, config: Record<string, string>): HarnessStack {
  return simulatorStack(sim, { dir, name, program: "test/engine/programs/single.ts", password: PASSWORD, config });
}

function apiCalls(stats: SimulatorStats): { calls: number; methods: Record<string, number> } {
  const methods = Object.fromEntries(Object.entries(stats.methods).filter(([m]) => !SESSION_METHODS.has(m)));
  return { calls: Object.values(methods).reduce((a, b) => a + b, 0), methods };
}

/** Runs one operation and records its calls against the least the API allows. */
async function count(label: string, least: number, op: () => Promise<HarnessResult>): Promise<number> {
  await sim.control.resetStats();
  const result = await op();
  expect(result.errors).toEqual([]);
  const { calls, methods } = apiCalls(await sim.control.stats());
  measured[label] = { calls, least, methods };
  return calls;
}

describe("round trips per PortGroup operation (3 hosts)", () => {
  it("standard: create, refresh, VLAN update and delete each within one call of the least the API allows", async () => {
    const s = stack("standard", { "pg:name": "pg-rt", "pg:vlanId": "10" });
    expect(await count("standard create (check + create)", 5, () => s.up())).toBeLessThanOrEqual(6);
    expect(await count("standard up with nothing to change", 1, () => s.up())).toBeLessThanOrEqual(2);
    expect(await count("standard refresh", 1, () => s.refresh())).toBeLessThanOrEqual(2);
    expect(await count("standard VLAN update (check + update)", 4, () => s.up({ ...s.opts.config, "pg:vlanId": "11" }))).toBeLessThanOrEqual(5);
    expect(await count("standard delete (with in-use check)", 4, () => s.destroy())).toBeLessThanOrEqual(5);
  });

  it("distributed: create and delete each within one call of the least the API allows", async () => {
    const s = stack("distributed", { "pg:name": "pg-rt-dv", "pg:kind": "distributed", "pg:switch": "DVS0", "pg:vlanId": "12" });
    expect(await count("distributed create (check + create)", 3, () => s.up())).toBeLessThanOrEqual(4);
    expect(await count("distributed up with nothing to change", 1, () => s.up())).toBeLessThanOrEqual(2);
    expect(await count("distributed refresh", 1, () => s.refresh())).toBeLessThanOrEqual(2);
    expect(await count("distributed VLAN update (check + update)", 3, () => s.up({ ...s.opts.config, "pg:vlanId": "13" }))).toBeLessThanOrEqual(4);
    expect(await count("distributed delete (with in-use check)", 3, () => s.destroy())).toBeLessThanOrEqual(4);
  });
});

describe("round trips per Image operation", () => {
  it("sparse VMDK: create, up with nothing to change, refresh and delete", async () => {
    const images = await ImageDir.create();
    try {
      const img = await images.convertedVmdk("rt.vmdk", "monolithicSparse", { adapter: "lsilogic", sizeMiB: 4, dataMiB: 1 });
      const s = simulatorStack(sim, {
        dir,
        name: "image",
        program: "test/engine/programs/images.ts",
        password: PASSWORD,
        config: { "imgtest:images": JSON.stringify({ img: { source: img } }) },
      });
      expect(await count("image create (check + create)", 15, () => s.up())).toBeLessThanOrEqual(16);
      expect(await count("image up with nothing to change", 0, () => s.up())).toBeLessThanOrEqual(1);
      expect(await count("image refresh", 3, () => s.refresh())).toBeLessThanOrEqual(4);
      expect(await count("image delete (holders, in-use check)", 6, () => s.destroy())).toBeLessThanOrEqual(7);
    } finally {
      await images.cleanup();
    }
  });
});
