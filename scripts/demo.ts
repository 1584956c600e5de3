// `npm run demo`: the quickstart (examples/quickstart) on the embedded vCenter
// simulator. With the Pulumi CLI installed it runs `pulumi preview / up / up /
// destroy` on a local file backend in a temp folder; without it, the same program
// runs through the engine-protocol harness (the real dynamic-provider process).
// The image it caches is made here with qemu-img: a streamOptimized VMDK of a few MiB
// of random data, as an appliance vendor ships one. After `up` it reads from vCenter
// what the program made: the port group on each host, the image's cache folder, and each
// instance's VM (readVm): its host, its root disk's parent (the cached base) and its VNC
// port; after `destroy`, that all of it is gone but nothing else.
//   --keep   leave the simulator and the resources up until Ctrl-C
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VimClient } from "../provider/vsphere/client.js";
import { DatastorePath, listFolder } from "../provider/vsphere/datastore.js";
import { FileNotFoundFault } from "../provider/vsphere/errors.js";
import { findCluster, getDatacenter } from "../provider/vsphere/inventory.js";
import { getHostNetworking } from "../provider/vsphere/network.js";
import { MoRef } from "../provider/vsphere/soap/xml.js";
import { readVm } from "../provider/vsphere/vm-read.js";
import { HarnessStack, type HarnessResult } from "../test/engine/index.js";
import { PROJECT_ROOT } from "../test/vcsim/build.mjs";
import { startVcsim, type Vcsim } from "../test/vcsim/index.js";

const keep = process.argv.includes("--keep");
const hasPulumi = spawnSync("pulumi", ["version"], { stdio: "ignore" }).status === 0;
const PROGRAM = "examples/quickstart/index.ts";

const MiB = 2 ** 20;

function stackConfig(sim: Vcsim, imageSource: string): Record<string, string> {
  return {
    "vmware:hostIp": sim.info.host,
    "vmware:hostPort": String(sim.info.port),
    "vmware:hostUsername": sim.info.username,
    "vmware:hostPassword": sim.info.password,
    "vmware:caFile": sim.info.caFile!,
    "vmware:clusterName": sim.info.inventory.datacenters[0]!.clusters[0]!.name,
    "quickstart:imageSource": imageSource,
  };
}

/** A 32 MiB disk with 4 MiB of random data, as a streamOptimized VMDK for an LSI Logic controller (qemu-img). */
function makeImage(dir: string): string {
  const raw = join(dir, "disk.raw");
  const vmdk = join(dir, "quickstart-disk.vmdk");
  const bytes = Buffer.alloc(32 * MiB);
  randomBytes(4 * MiB).copy(bytes, MiB);
  writeFileSync(raw, bytes);
  try {
    execFileSync("qemu-img", ["convert", "-q", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized,adapter_type=lsilogic", raw, vmdk]);
  } catch (err) {
    throw new Error(`qemu-img could not make the demo image (install qemu-utils, or run node scripts/bootstrap.mjs): ${(err as Error).message}`);
  } finally {
    rmSync(raw, { force: true });
  }
  return vmdk;
}

const connect = (sim: Vcsim) => VimClient.connect({ host: sim.info.host, port: sim.info.port, username: sim.info.username, password: sim.info.password, caFile: sim.info.caFile });

async function showInVCenter(sim: Vcsim, name: string): Promise<void> {
  const client = await connect(sim);
  try {
    const cluster = await findCluster(client, sim.info.inventory.datacenters[0]!.clusters[0]!.name);
    for (const h of await getHostNetworking(client, cluster.hosts)) {
      const pg = h.portgroups.find((p) => p.name === name);
      console.log(`    ${h.hostName}: ${pg ? `port group ${pg.name}, VLAN ${pg.vlanId}, on ${pg.vswitchName}` : "(none)"}`);
    }
  } finally {
    await client.close();
  }
}

/** The image's cache folder as the datastore browser lists it (SearchDatastore_Task): each file and its size. */
async function showImageFolder(sim: Vcsim, imagePath: string): Promise<void> {
  const folder = DatastorePath.parse(imagePath).parent;
  const client = await connect(sim);
  try {
    const dc = await getDatacenter(client);
    let files;
    try {
      files = await listFolder(client, dc, folder, { details: true });
    } catch (err) {
      if (!(err instanceof FileNotFoundFault)) throw err;
      console.log(`    ${folder}: (gone)`);
      return;
    }
    console.log(`    ${folder}:`);
    for (const f of files.sort((a, b) => a.name.localeCompare(b.name))) console.log(`      ${f.name.padEnd(48)} ${f.folder ? "(folder)" : `${f.size ?? "?"} bytes`}`);
    // Uploads are staged under vmware_temp/<uuid> and moved into the cache in one step: nothing stays behind.
    const staging = new DatastorePath(folder.datastore, "vmware_temp");
    const left = await listFolder(client, dc, staging).catch((err: unknown) => (err instanceof FileNotFoundFault ? [] : Promise.reject(err)));
    console.log(`    ${staging}: ${left.length ? left.map((f) => f.name).join(", ") : "(empty)"}`);
  } finally {
    await client.close();
  }
}

/** What the program exports per instance (examples/quickstart/index.ts). */
type InstanceSummary = { name: string; vmId: string; displayName?: string };

function instancesOf(outputs: Record<string, unknown>): Array<[string, InstanceSummary]> {
  return Object.entries((outputs.instances ?? {}) as Record<string, InstanceSummary>);
}

// Each VM's folder as first seen, to show it gone after destroy.
const vmFolders = new Map<string, DatastorePath>();

/**
 * Each instance's VM as vCenter has it (one readVm each): power, host, root disk and its
 * parent, VNC port, NICs. A VM gone is shown with its folder (gone too, unless something is left).
 */
async function showVms(sim: Vcsim, instances: Array<[string, InstanceSummary]>): Promise<void> {
  const client = await connect(sim);
  try {
    for (const [key, i] of instances) {
      const vm = await readVm(client, new MoRef("VirtualMachine", i.vmId));
      if (!vm) {
        const folder = vmFolders.get(i.vmId);
        let left = "";
        if (folder) {
          const files = await listFolder(client, await getDatacenter(client), folder).catch((err: unknown) => (err instanceof FileNotFoundFault ? undefined : Promise.reject(err)));
          left = `; its folder ${folder}: ${files ? files.map((f) => f.name).join(", ") || "(empty)" : "(gone)"}`;
        }
        console.log(`    ${key}: VM ${i.vmId} (gone)${left}`);
        continue;
      }
      vmFolders.set(i.vmId, DatastorePath.parse(vm.vmxPath).parent);
      const disk = vm.disks[0];
      console.log(`    ${key}: VM ${vm.name} (${vm.vm.value}), ${vm.powerState} on host ${vm.hostName ?? "?"}, VNC port ${vm.vncPort ?? "none"}`);
      console.log(`      disk   ${disk ? `${disk.fileName} (${disk.capacityKb / 1024} MiB, ${disk.controllerType})` : "(none)"}`);
      console.log(`      parent ${disk?.parents[0] ?? "(none: a disk of its own)"}`);
      console.log(`      nics   ${vm.nics.map((n) => `${n.model} on ${n.backing.kind === "standard" ? n.backing.networkName : n.backing.kind === "distributed" ? n.backing.portgroupKey : n.backing.type}`).join(", ") || "(none)"}`);
    }
  } finally {
    await client.close();
  }
}

function report(step: string, r: HarnessResult): void {
  const counts = r.events.reduce<Record<string, number>>((acc, e) => ({ ...acc, [e.op]: (acc[e.op] ?? 0) + 1 }), {});
  const summary = Object.entries(counts).map(([op, n]) => `${n} ${op}`).join(", ") || "nothing to do";
  console.log(`\n$ ${step}\n  ${summary}`);
  for (const e of r.events) console.log(`    ${e.op.padEnd(8)} ${e.key.replace("pulumi-nodejs:dynamic/", "")}${e.id ? `  (id ${e.id})` : ""}`);
  for (const err of r.errors) console.log(`  error: ${err}`);
  if (r.errors.length) throw new Error(`${step} failed`);
}

async function withHarness(sim: Vcsim, config: Record<string, string>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "vmware-demo-"));
  const stack = new HarnessStack({ program: PROGRAM, stateFile: join(dir, "state.json"), config, secretKeys: ["vmware:hostPassword"] });
  try {
    report("preview", await stack.preview());
    const up = await stack.up();
    report("up", up);
    console.log("  outputs:");
    for (const [k, v] of Object.entries(up.outputs)) console.log(`    ${k}: ${JSON.stringify(v)}`);
    console.log("  in vCenter now:");
    await showInVCenter(sim, String(up.outputs.networkName));
    console.log("  the image in the datastore cache:");
    await showImageFolder(sim, String(up.outputs.imagePath));
    console.log("  the instances in vCenter:");
    await showVms(sim, instancesOf(up.outputs));
    const again = await stack.up();
    report("up (again: expect no changes)", again);
    if (again.events.some((e) => e.op !== "same")) throw new Error("the second up changed something");
    if (keep) {
      console.log(`\n--keep: state in ${join(dir, "state.json")}; Ctrl-C to destroy and stop`);
      await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()));
    }
    report("destroy", await stack.destroy());
    console.log("  in vCenter now:");
    await showInVCenter(sim, String(up.outputs.networkName));
    await showImageFolder(sim, String(up.outputs.imagePath));
    await showVms(sim, instancesOf(up.outputs));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function withPulumiCli(sim: Vcsim, config: Record<string, string>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "vmware-demo-pulumi-"));
  const env = { ...process.env, PULUMI_BACKEND_URL: `file://${dir}`, PULUMI_CONFIG_PASSPHRASE: "demo", PULUMI_SKIP_UPDATE_CHECK: "true" };
  const pulumi = (...args: string[]) => {
    console.log(`\n$ pulumi ${args.join(" ")}`);
    execFileSync("pulumi", [...args, "--stack", "demo", "--non-interactive"], { cwd: PROJECT_ROOT, env, stdio: "inherit" });
  };
  try {
    execFileSync("pulumi", ["stack", "init", "demo", "--non-interactive"], { cwd: PROJECT_ROOT, env, stdio: "inherit" });
    for (const [key, value] of Object.entries(config)) {
      const secret = key === "vmware:hostPassword" ? ["--secret"] : [];
      execFileSync("pulumi", ["config", "set", ...secret, key, value, "--stack", "demo"], { cwd: PROJECT_ROOT, env, stdio: "ignore" });
    }
    pulumi("preview");
    pulumi("up", "--yes");
    const output = (name: string): unknown =>
      JSON.parse(execFileSync("pulumi", ["stack", "output", name, "--json", "--stack", "demo", "--non-interactive"], { cwd: PROJECT_ROOT, env, encoding: "utf8" }));
    const imagePath = String(output("imagePath"));
    const instances = instancesOf({ instances: output("instances") });
    console.log("  the image in the datastore cache:");
    await showImageFolder(sim, imagePath);
    console.log("  the instances in vCenter:");
    await showVms(sim, instances);
    pulumi("up", "--yes", "--expect-no-changes");
    pulumi("destroy", "--yes");
    await showImageFolder(sim, imagePath);
    await showVms(sim, instances);
  } finally {
    spawnSync("pulumi", ["stack", "rm", "demo", "--yes", "--force", "--non-interactive"], { cwd: PROJECT_ROOT, env, stdio: "ignore" });
    rmSync(join(PROJECT_ROOT, "Pulumi.demo.yaml"), { force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  console.log(
    hasPulumi
      ? "demo: the quickstart with the Pulumi CLI (local file backend in a temp folder), on the embedded vCenter simulator"
      : "demo: the Pulumi CLI is not installed, so the quickstart runs through the engine-protocol harness (the real dynamic-provider process, state in a JSON file), on the embedded vCenter simulator",
  );
  const work = mkdtempSync(join(tmpdir(), "vmware-demo-image-"));
  const image = makeImage(work);
  console.log(`\nimage: ${image}, ${statSync(image).size} bytes (qemu-img: streamOptimized VMDK, lsilogic, 32 MiB disk with 4 MiB of random data)`);
  const sim = await startVcsim({ tls: true, clusters: 1, hosts: 3, datastores: 2, vms: 6 });
  try {
    const config = stackConfig(sim, image);
    const dc = sim.info.inventory.datacenters[0]!;
    console.log(`\nvCenter simulator at ${sim.info.url} (TLS, CA ${sim.info.caFile}), ready in ${sim.info.startupMs} ms`);
    console.log(`  datacenter ${dc.name}; cluster ${dc.clusters.map((c) => `${c.name} (${c.hosts.join(", ")})`).join("; ")}`);
    console.log(`  datastores ${dc.datastores.join(", ")}; networks ${dc.networks.join(", ")}`);
    console.log(`\nstack config: ${Object.entries(config).map(([k, v]) => `${k}=${k.endsWith("Password") ? "[secret]" : v}`).join(" ")}`);
    if (hasPulumi) await withPulumiCli(sim, config);
    else await withHarness(sim, config);
  } finally {
    await sim.stop();
    rmSync(work, { recursive: true, force: true });
  }
  console.log("\ndemo done: simulator stopped");
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
