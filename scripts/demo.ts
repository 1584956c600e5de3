// `npm run demo`: the quickstart (examples/quickstart) on the embedded vCenter
// simulator. With the Pulumi CLI installed it runs `pulumi preview / up / up /
// destroy` on a local file backend in a temp folder; without it, the same program
// runs through the engine-protocol harness (the real dynamic-provider process).
//   --keep   leave the simulator and the resources up until Ctrl-C
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { VimClient } from "../provider/vsphere/client.js";
import { findCluster } from "../provider/vsphere/inventory.js";
import { getHostNetworking } from "../provider/vsphere/network.js";
import { HarnessStack, type HarnessResult } from "../test/engine/index.js";
import { PROJECT_ROOT } from "../test/vcsim/build.mjs";
import { startVcsim, type Vcsim } from "../test/vcsim/index.js";

const keep = process.argv.includes("--keep");
const hasPulumi = spawnSync("pulumi", ["version"], { stdio: "ignore" }).status === 0;
const PROGRAM = "examples/quickstart/index.ts";

function stackConfig(sim: Vcsim): Record<string, string> {
  return {
    "vmware:hostIp": sim.info.host,
    "vmware:hostPort": String(sim.info.port),
    "vmware:hostUsername": sim.info.username,
    "vmware:hostPassword": sim.info.password,
    "vmware:caFile": sim.info.caFile!,
    "vmware:clusterName": sim.info.inventory.datacenters[0]!.clusters[0]!.name,
  };
}

async function showInVCenter(sim: Vcsim, name: string): Promise<void> {
  const cfg = stackConfig(sim);
  const client = await VimClient.connect({ host: sim.info.host, port: sim.info.port, username: sim.info.username, password: sim.info.password, caFile: sim.info.caFile });
  try {
    const cluster = await findCluster(client, cfg["vmware:clusterName"]!);
    for (const h of await getHostNetworking(client, cluster.hosts)) {
      const pg = h.portgroups.find((p) => p.name === name);
      console.log(`    ${h.hostName}: ${pg ? `port group ${pg.name}, VLAN ${pg.vlanId}, on ${pg.vswitchName}` : "(none)"}`);
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

async function withHarness(sim: Vcsim): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "vmware-demo-"));
  const stack = new HarnessStack({ program: PROGRAM, stateFile: join(dir, "state.json"), config: stackConfig(sim), secretKeys: ["vmware:hostPassword"] });
  try {
    report("preview", await stack.preview());
    const up = await stack.up();
    report("up", up);
    console.log("  outputs:");
    for (const [k, v] of Object.entries(up.outputs)) console.log(`    ${k}: ${JSON.stringify(v)}`);
    console.log("  in vCenter now:");
    await showInVCenter(sim, String(up.outputs.networkName));
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
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function withPulumiCli(sim: Vcsim): void {
  const dir = mkdtempSync(join(tmpdir(), "vmware-demo-pulumi-"));
  const env = { ...process.env, PULUMI_BACKEND_URL: `file://${dir}`, PULUMI_CONFIG_PASSPHRASE: "demo", PULUMI_SKIP_UPDATE_CHECK: "true" };
  const pulumi = (...args: string[]) => {
    console.log(`\n$ pulumi ${args.join(" ")}`);
    execFileSync("pulumi", [...args, "--stack", "demo", "--non-interactive"], { cwd: PROJECT_ROOT, env, stdio: "inherit" });
  };
  try {
    execFileSync("pulumi", ["stack", "init", "demo", "--non-interactive"], { cwd: PROJECT_ROOT, env, stdio: "inherit" });
    for (const [key, value] of Object.entries(stackConfig(sim))) {
      const secret = key === "vmware:hostPassword" ? ["--secret"] : [];
      execFileSync("pulumi", ["config", "set", ...secret, key, value, "--stack", "demo"], { cwd: PROJECT_ROOT, env, stdio: "ignore" });
    }
    pulumi("preview");
    pulumi("up", "--yes");
    pulumi("up", "--yes", "--expect-no-changes");
    pulumi("destroy", "--yes");
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
  const sim = await startVcsim({ tls: true, clusters: 1, hosts: 3, datastores: 2, vms: 6 });
  try {
    const dc = sim.info.inventory.datacenters[0]!;
    console.log(`\nvCenter simulator at ${sim.info.url} (TLS, CA ${sim.info.caFile}), ready in ${sim.info.startupMs} ms`);
    console.log(`  datacenter ${dc.name}; cluster ${dc.clusters.map((c) => `${c.name} (${c.hosts.join(", ")})`).join("; ")}`);
    console.log(`  datastores ${dc.datastores.join(", ")}; networks ${dc.networks.join(", ")}`);
    console.log(`\nstack config: ${Object.entries(stackConfig(sim)).map(([k, v]) => `${k}=${k.endsWith("Password") ? "[secret]" : v}`).join(" ")}`);
    if (hasPulumi) withPulumiCli(sim);
    else await withHarness(sim);
  } finally {
    await sim.stop();
  }
  console.log("\ndemo done: simulator stopped");
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
