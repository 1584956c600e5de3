// Two provider processes and one sized base: process 1 makes the base `<imageId>.1.vmdk`,
// its create then fails and its undo removes the base (no VM of its own uses it, and holds
// are per process) — while process 2, which found the base, has a CreateVM_Task in flight
// that links to it. vCenter then refuses process 2's child disk (its parent is gone);
// process 2 makes the base again and creates once more. Nothing leaks either way.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout } from "node:timers/promises";
import { afterAll, beforeAll, expect, it } from "vitest";
import { VimClient } from "../../provider/vsphere/client.js";
import { DatastorePath, fileExists } from "../../provider/vsphere/datastore.js";
import { getDatacenter, listVms, type Datacenter } from "../../provider/vsphere/inventory.js";
import { MoRef } from "../../provider/vsphere/soap/xml.js";
import { readVm } from "../../provider/vsphere/vm-read.js";
import { simOptions } from "../support/clients.js";
import { ImageDir } from "../support/images.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";
import { simulatorStack } from "./index.js";

const PASSWORD = "pw-race-1";
let sim: Vcsim;
let client: VimClient;
let dc: Datacenter;
let images: ImageDir;
let dir: string;
const stack = (name: string, spec: unknown) =>
  simulatorStack(sim, { dir, name, program: "test/engine/programs/instances.ts", password: PASSWORD, config: { "vmware:cachePrefix": "race", "insttest:spec": JSON.stringify(spec) } });

beforeAll(async () => {
  sim = await startVcsim({ tls: true, clusters: 1, hosts: 2, datastores: 2, password: PASSWORD });
  client = await VimClient.connect(simOptions(sim));
  dc = await getDatacenter(client);
  dir = mkdtempSync(join(tmpdir(), "race-"));
  images = await ImageDir.create();
});
afterAll(async () => {
  await client?.close();
  await sim?.stop();
  await images?.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

it("a sized base another process's failed create removed is made again, and the create succeeds", async () => {
  const src = await images.sparseVmdk("b.vmdk", { sizeMiB: 16 });
  const base = stack("base", { images: { img: { source: src, datastores: ["LocalDS_0"] } } });
  expect((await base.up()).errors).toEqual([]);
  const imageId = (base.state().resources[0]!.outputs as { imageId: string }).imageId;
  const sized = new DatastorePath("LocalDS_1", `race_base/${imageId}/${imageId}.1.vmdk`);
  // Process 1 (memory 96): its create is held back, then fails. Process 2 (memory 64): its create runs late.
  await sim.control.addRule({ kind: "delay", method: "CreateVM_Task", args: { "config.memoryMB": "96" }, ms: 8000 });
  await sim.control.addRule({ kind: "taskError", method: "CreateVM_Task", args: { "config.memoryMB": "96" }, fault: "InsufficientResourcesFault", message: "injected p1" });
  await sim.control.addRule({ kind: "taskDelay", method: "CreateVM_Task", args: { "config.memoryMB": "64" }, ms: 8000 });
  const p1 = stack("p1", { instances: { x: { imageId, cpus: 1, memoryMb: 96, rootDiskGb: 1, datastore: "LocalDS_1" } } });
  const p2 = stack("p2", { instances: { y: { imageId, cpus: 1, memoryMb: 64, rootDiskGb: 1, datastore: "LocalDS_1" } } });
  const first = p1.up();
  // Process 2 starts once process 1 has made the base (a state of the datastore, polled).
  while (!(await fileExists(client, dc, sized))) await setTimeout(50);
  const [a, b] = await Promise.all([first, p2.up()]);
  expect(a.errors.join("\n")).toContain("injected p1");
  expect(b.errors).toEqual([]);
  // Process 2's VM links to the base made again; process 1 left no VM.
  const y = p2.state().resources.find((r) => r.name === "y")!;
  const view = await readVm(client, new MoRef("VirtualMachine", (y.outputs as { vmId: string }).vmId));
  expect(view?.disks[0]?.parents[0]).toBe(sized.toString());
  expect(await fileExists(client, dc, sized)).toBe(true);
  expect((await listVms(client, dc.vmFolder)).filter((v) => /^[0-9a-f]{8}-/.test(v.name)).map((v) => v.name)).toEqual([view!.name]);
  expect((await p2.destroy()).errors).toEqual([]);
}, 120_000);
