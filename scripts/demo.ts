// `npm run demo`: the main job on the embedded simulator. Until the first resource
// lands it starts the simulator, shows what it serves, and checks it live.
//   --keep   leave the simulator running until Ctrl-C
import { Agent } from "undici";
import { readFileSync } from "node:fs";
import { RawSoap } from "../test/support/raw-soap.js";
import { startVcsim } from "../test/vcsim/index.js";

const keep = process.argv.includes("--keep");

async function main(): Promise<void> {
  console.log("demo: no resource has landed yet, so this starts the embedded vCenter (vcsim) and describes it.");
  const sim = await startVcsim({ tls: true, clusters: 1, hosts: 3, datastores: 2, localDatastores: 1, vms: 6 });
  try {
    const { info } = sim;
    console.log(`\nvCenter simulator up in ${info.startupMs} ms (pid ${info.pid})`);
    console.log(`  SDK URL      ${info.url}`);
    console.log(`  login        ${info.username} / ${info.password}`);
    console.log(`  CA file      ${info.caFile}`);
    console.log(`  thumbprint   ${info.thumbprint}`);
    console.log(`  control      ${info.controlUrl}  (fault injection, see README)`);
    for (const dc of info.inventory.datacenters) {
      console.log(`\n  datacenter ${dc.name}`);
      for (const c of dc.clusters) console.log(`    cluster ${c.name} (DRS ${c.drs ? "on" : "off"}): ${c.hosts.join(", ")}`);
      if (dc.standaloneHosts.length) console.log(`    standalone hosts: ${dc.standaloneHosts.join(", ")}`);
      console.log(`    datastores: ${dc.datastores.join(", ")}`);
      console.log(`    networks: ${dc.networks.join(", ")}`);
    }

    const soap = new RawSoap(info.url, new Agent({ connect: { ca: readFileSync(info.caFile!) } }));
    const sc = await soap.serviceContent();
    await soap.login(sc, info.username, info.password);
    const vms = await soap.retrieveAll(sc, "VirtualMachine", ["name"]);
    console.log(`\nlive check over TLS (verified with the CA file): ${sc.about.fullName}, ${vms.length} VMs`);
    console.log(`\npoint the test suite at it:\n  VMWARE_TEST_HOST=${info.host} VMWARE_TEST_PORT=${info.port} VMWARE_TEST_USERNAME=${info.username} VMWARE_TEST_PASSWORD=${info.password} VMWARE_TEST_CA_FILE=${info.caFile} npx vitest run`);

    if (keep) {
      console.log("\n--keep: running until Ctrl-C");
      await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()));
    }
  } finally {
    await sim.stop();
    console.log("\nsimulator stopped");
  }
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
