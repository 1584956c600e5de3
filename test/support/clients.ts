// Client options for the suite's targets.
import type { ClientOptions } from "../../provider/vsphere/client.js";
import type { Vcsim } from "../vcsim/index.js";
import type { VCenterTarget } from "./target.js";

/** Options for a private simulator (plain HTTP unless it was started with TLS). */
export function simOptions(sim: Vcsim, overrides: Partial<ClientOptions> = {}): ClientOptions {
  return {
    host: sim.info.host,
    port: sim.info.port,
    protocol: sim.info.tls ? "https" : "http",
    username: sim.info.username,
    password: sim.info.password,
    ...(sim.info.caFile ? { caFile: sim.info.caFile } : {}),
    retryBaseDelayMs: 5,
    retryMaxDelayMs: 20,
    ...overrides,
  };
}

/** Options for the suite's shared vCenter (simulator or real). */
export function targetOptions(target: VCenterTarget, overrides: Partial<ClientOptions> = {}): ClientOptions {
  return {
    host: target.host,
    port: target.port,
    protocol: target.url.startsWith("http:") ? "http" : "https",
    username: target.username,
    password: target.password,
    caFile: target.caFile,
    insecure: target.insecure,
    thumbprint: target.kind === "external" ? target.thumbprint : undefined,
    ...overrides,
  };
}
