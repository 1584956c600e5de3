// Which vCenter the integration suite runs against: the embedded simulator started
// by the global setup, or a real vCenter named by VMWARE_TEST_* variables.
import { readFileSync } from "node:fs";
import { Agent } from "undici";

export interface VCenterTarget {
  kind: "vcsim" | "external";
  /** SDK endpoint, e.g. https://vc.example.com/sdk */
  url: string;
  host: string;
  port: number;
  username: string;
  password: string;
  caFile?: string;
  insecure: boolean;
  thumbprint?: string;
  datacenter?: string;
  cluster?: string;
  datastoreRegex?: string;
  /** Only for the simulator: the fault-injection control endpoint. */
  controlUrl?: string;
}

/** Environment variables that point the suite at a real vCenter. */
export const TARGET_ENV = {
  host: "VMWARE_TEST_HOST",
  port: "VMWARE_TEST_PORT",
  username: "VMWARE_TEST_USERNAME",
  password: "VMWARE_TEST_PASSWORD",
  caFile: "VMWARE_TEST_CA_FILE",
  insecure: "VMWARE_TEST_INSECURE",
  thumbprint: "VMWARE_TEST_THUMBPRINT",
  datacenter: "VMWARE_TEST_DATACENTER",
  cluster: "VMWARE_TEST_CLUSTER",
  datastoreRegex: "VMWARE_TEST_DATASTORE_REGEX",
} as const;

/** The external target from the environment, or undefined when VMWARE_TEST_HOST is unset. */
export function externalTargetFromEnv(env: NodeJS.ProcessEnv = process.env): VCenterTarget | undefined {
  const host = env[TARGET_ENV.host];
  if (!host) return undefined;
  const need = (name: string): string => {
    const v = env[name];
    if (!v) throw new Error(`${TARGET_ENV.host} is set, so ${name} must be set too`);
    return v;
  };
  const port = Number(env[TARGET_ENV.port] ?? "443");
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`${TARGET_ENV.port}=${env[TARGET_ENV.port]}: want a port number 1-65535`);
  }
  const opt = (name: string): string | undefined => env[name] || undefined;
  const target: VCenterTarget = {
    kind: "external",
    url: `https://${host.includes(":") ? `[${host}]` : host}:${port}/sdk`,
    host,
    port,
    username: need(TARGET_ENV.username),
    password: need(TARGET_ENV.password),
    insecure: /^(1|true|yes)$/i.test(env[TARGET_ENV.insecure] ?? ""),
  };
  const optional: Array<[keyof VCenterTarget, string]> = [
    ["caFile", TARGET_ENV.caFile],
    ["thumbprint", TARGET_ENV.thumbprint],
    ["datacenter", TARGET_ENV.datacenter],
    ["cluster", TARGET_ENV.cluster],
    ["datastoreRegex", TARGET_ENV.datastoreRegex],
  ];
  for (const [key, name] of optional) {
    const v = opt(name);
    if (v !== undefined) (target as unknown as Record<string, unknown>)[key] = v;
  }
  return target;
}

/** An undici dispatcher that trusts the target the way the target says it should be trusted. */
export function targetDispatcher(target: Pick<VCenterTarget, "caFile" | "insecure">): Agent {
  if (target.caFile) return new Agent({ connect: { ca: readFileSync(target.caFile) } });
  return new Agent({ connect: { rejectUnauthorized: !target.insecure } });
}
