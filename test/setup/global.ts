// Vitest global setup: one embedded simulator for the whole run (unless the suite
// is pointed at a real vCenter), handed to the tests with `inject("vcenter")`.
import type { TestProject } from "vitest/node";
import { externalTargetFromEnv, type VCenterTarget } from "../support/target.js";
import { startVcsim, type VcsimOptions } from "../vcsim/index.js";

declare module "vitest" {
  export interface ProvidedContext {
    vcenter: VCenterTarget;
  }
}

/** The shared simulator's inventory: TLS on, one cluster of three hosts, like a small real site. */
export const SHARED_TOPOLOGY: VcsimOptions = {
  tls: true,
  clusters: 1,
  hosts: 3,
  standaloneHosts: 1,
  datastores: 2,
  localDatastores: 1,
  vms: 6,
};

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = externalTargetFromEnv();
  if (external) {
    process.stderr.write(`integration suite against ${external.url} (VMWARE_TEST_HOST)\n`);
    project.provide("vcenter", external);
    return async () => {};
  }
  const sim = await startVcsim(SHARED_TOPOLOGY);
  const dc = sim.info.inventory.datacenters[0];
  project.provide("vcenter", {
    kind: "vcsim",
    url: sim.info.url,
    host: sim.info.host,
    port: sim.info.port,
    username: sim.info.username,
    password: sim.info.password,
    ...(sim.info.caFile ? { caFile: sim.info.caFile } : {}),
    ...(sim.info.thumbprint ? { thumbprint: sim.info.thumbprint } : {}),
    insecure: false,
    ...(dc ? { datacenter: dc.name } : {}),
    ...(dc?.clusters[0] ? { cluster: dc.clusters[0].name } : {}),
    controlUrl: sim.info.controlUrl,
  });
  return () => sim.stop();
}
