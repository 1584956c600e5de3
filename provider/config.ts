// Stack configuration (`vmware:*`) -> DriverConfig. Every option of the seed's
// `[vmware]` reference and the `[DEFAULT]` options it names for this driver, with
// the seed's defaults; environment variables as fallback. Validated with zod: a
// bad value is an error that names the key, the value and what is accepted.
import { z } from "zod";
import type { ClientOptions } from "./vsphere/client.js";
import { InvalidEndpointError } from "./vsphere/errors.js";
import { checkHost } from "./vsphere/transport.js";

/** Where a key's value may come from, in order: stack config, then these variables. */
export interface KeySpec {
  /** The Nova option it mirrors, e.g. "[vmware] host_ip". */
  nova: string;
  env: string[];
  default?: string | number | boolean;
  secret?: boolean;
  /** Accepted but without effect here; the reason is in `ignoredBecause`. */
  ignoredBecause?: string;
  description: string;
}

const env = (key: string) => `VMWARE_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

/** Every `vmware:*` key. README's configuration table is generated from this. */
export const CONFIG_KEYS = {
  hostIp: { nova: "[vmware] host_ip", env: [env("hostIp"), "VSPHERE_SERVER"], description: "vCenter host name or IP address." },
  hostPort: { nova: "[vmware] host_port", env: [env("hostPort")], default: 443, description: "vCenter HTTPS port." },
  hostUsername: { nova: "[vmware] host_username", env: [env("hostUsername"), "VSPHERE_USER"], description: "vCenter user (the service account)." },
  hostPassword: {
    nova: "[vmware] host_password",
    env: [env("hostPassword"), "VSPHERE_PASSWORD"],
    secret: true,
    description: "Its password. Set it with `pulumi config set --secret`.",
  },
  clusterName: { nova: "[vmware] cluster_name", env: [env("clusterName")], description: "The cluster (ClusterComputeResource) resources go to." },
  datastoreRegex: {
    nova: "[vmware] datastore_regex",
    env: [env("datastoreRegex")],
    description: "Regular expression for the datastores to use; without it, the datastore with the most free space.",
  },
  apiRetryCount: { nova: "[vmware] api_retry_count", env: [env("apiRetryCount")], default: 10, description: "Retries of a vCenter call on connection failures." },
  taskPollInterval: { nova: "[vmware] task_poll_interval", env: [env("taskPollInterval")], default: 0.5, description: "Seconds between polls of a vCenter task." },
  caFile: { nova: "[vmware] ca_file", env: [env("caFile")], description: "CA bundle that verifies the vCenter certificate." },
  insecure: {
    nova: "[vmware] insecure",
    env: [env("insecure"), "VSPHERE_ALLOW_UNVERIFIED_SSL"],
    default: false,
    description: "Do not verify the vCenter certificate. Ignored when caFile is set.",
  },
  thumbprint: {
    nova: "(none: an addition)",
    env: [env("thumbprint")],
    description: "Pin the vCenter certificate by its SHA-1 (AB:CD:...) or SHA-256 thumbprint instead of CA verification.",
  },
  cachePrefix: { nova: "[vmware] cache_prefix", env: [env("cachePrefix")], description: "Prefix of the datastore folder of cached images (shared caches)." },
  useLinkedClone: { nova: "[vmware] use_linked_clone", env: [env("useLinkedClone")], default: true, description: "Boot instances as linked clones of the cached image." },
  maximumObjects: { nova: "[vmware] maximum_objects", env: [env("maximumObjects")], default: 100, description: "Objects per property-collector page." },
  serialPortServiceUri: {
    nova: "[vmware] serial_port_service_uri",
    env: [env("serialPortServiceUri")],
    description: "Where instances' virtual serial port sends console output (a serial port concentrator); none: no serial port.",
  },
  serialPortProxyUri: {
    nova: "[vmware] serial_port_proxy_uri",
    env: [env("serialPortProxyUri")],
    description: "Proxy in front of serialPortServiceUri. Ignored without serialPortServiceUri.",
  },
  integrationBridge: {
    nova: "[vmware] integration_bridge",
    env: [env("integrationBridge")],
    description: "NSX-MH only: the integration bridge port group all instance NICs attach to (Nova's docs name br-int).",
  },
  consoleDelaySeconds: {
    nova: "[vmware] console_delay_seconds",
    env: [env("consoleDelaySeconds")],
    description: "Remote console key-repeat delay, against repeated characters on slow links.",
  },
  pbmEnabled: { nova: "[vmware] pbm_enabled", env: [env("pbmEnabled")], default: false, description: "Place instance disks by storage policy (SPBM)." },
  pbmDefaultPolicy: {
    nova: "[vmware] pbm_default_policy",
    env: [env("pbmDefaultPolicy")],
    description: "Storage policy used when pbmEnabled and a resource names none.",
  },
  pbmWsdlLocation: {
    nova: "[vmware] pbm_wsdl_location",
    env: [env("pbmWsdlLocation")],
    ignoredBecause: "this provider speaks the SPBM and vim25 APIs without WSDL files",
    description: "PBM WSDL location.",
  },
  wsdlLocation: {
    nova: "[vmware] wsdl_location",
    env: [env("wsdlLocation")],
    ignoredBecause: "this provider needs no WSDL; local WSDL files only mattered for vSphere older than 5.1, which is refused (5.5.0 is the minimum)",
    description: "vim WSDL location.",
  },
  flatNetworkBridge: {
    nova: "[DEFAULT] flat_network_bridge",
    env: [env("flatNetworkBridge")],
    default: "br100",
    description: "Name of the flat network's port group (nova-network FlatManager); a valid Linux bridge name.",
  },
  vlanInterface: {
    nova: "[DEFAULT] vlan_interface",
    env: [env("vlanInterface")],
    default: "vmnic0",
    description: "Physical NIC of the hosts that carries VLAN-tagged traffic; its vSwitch takes new standard port groups (VlanManager).",
  },
  reservedHostMemoryMb: {
    nova: "[DEFAULT] reserved_host_memory_mb",
    env: [env("reservedHostMemoryMb")],
    default: 512,
    ignoredBecause: "it tunes Nova's scheduler; Pulumi has no scheduler, and vCenter/DRS place instances (VMware recommends 0 with this driver anyway)",
    description: "Memory kept back from scheduling.",
  },
  removeUnusedBaseImages: {
    nova: "[DEFAULT] remove_unused_base_images",
    env: [env("removeUnusedBaseImages")],
    default: true,
    description: "Default of ImageCachePolicy: purge cached images no instance uses.",
  },
  removeUnusedOriginalMinimumAgeSeconds: {
    nova: "[DEFAULT] remove_unused_original_minimum_age_seconds",
    env: [env("removeUnusedOriginalMinimumAgeSeconds")],
    default: 86400,
    description: "Default of ImageCachePolicy: how long an unused cached image is kept.",
  },
} as const satisfies Record<string, KeySpec>;

export type ConfigKey = keyof typeof CONFIG_KEYS;

const text = z.string().trim().min(1);
const boolText = z.union([z.boolean(), z.enum(["true", "false", "1", "0", "yes", "no", "True", "False"])]).transform((v) =>
  typeof v === "boolean" ? v : ["true", "1", "yes", "True"].includes(v),
);
const intText = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.union([z.number(), z.string().trim().regex(/^-?\d+$/, "a whole number").transform(Number)]).pipe(z.number().int().min(min).max(max));
const numText = (min: number) =>
  z.union([z.number(), z.string().trim().regex(/^\d+(\.\d+)?$/, "a number").transform(Number)]).pipe(z.number().gt(min));

/** Whether JavaScript can compile `s` as a regular expression (datastore regexes, here and in resources). */
export function isRegex(s: string): boolean {
  try {
    new RegExp(s);
    return true;
  } catch {
    return false;
  }
}

const regexText = text.refine(isRegex, { message: "a valid regular expression" });
const uri = text.refine((s) => URL.canParse(s), { message: "a URI such as telnet://10.0.0.5:13370" });

const HOST_WANT = "a host name or IP address; put the port in vmware:hostPort";
const hostText = z.string().superRefine((s, ctx) => {
  try {
    checkHost(s.trim());
  } catch (err) {
    if (!(err instanceof InvalidEndpointError)) throw err;
    const first = err.reason.split(";")[0] ?? "";
    const note = first.startsWith("a ") ? `this is ${first}` : first === "empty" ? "it is empty" : first.startsWith("contains") ? `it ${first}` : "";
    ctx.addIssue({ code: "custom", message: note ? `${HOST_WANT} (${note})` : HOST_WANT });
  }
});
const BOOL_WANT = "true or false";

/** The validated settings the driver runs with. */
export const DriverConfigSchema = z.object({
  hostIp: hostText.transform((s) => s.trim()),
  hostPort: intText(1, 65535),
  hostUsername: text,
  hostPassword: z.string().min(1),
  clusterName: text.optional(),
  datastoreRegex: regexText.optional(),
  apiRetryCount: intText(0, 100),
  taskPollInterval: numText(0),
  caFile: text.optional(),
  insecure: boolText,
  thumbprint: text.regex(/^([0-9A-Fa-f]{2}:?){20}$|^([0-9A-Fa-f]{2}:?){32}$/, "a SHA-1 or SHA-256 fingerprint such as AB:CD:...").optional(),
  cachePrefix: text.regex(/^[A-Za-z0-9._-]+$/, "letters, digits, '.', '_' or '-' (a folder name prefix)").optional(),
  useLinkedClone: boolText,
  maximumObjects: intText(1, 100_000),
  serialPortServiceUri: uri.optional(),
  serialPortProxyUri: uri.optional(),
  integrationBridge: text.optional(),
  consoleDelaySeconds: intText(0, 3600).optional(),
  pbmEnabled: boolText,
  pbmDefaultPolicy: text.optional(),
  pbmWsdlLocation: text.optional(),
  wsdlLocation: text.optional(),
  flatNetworkBridge: text.regex(/^[^\s/:]{1,15}$/, "a Linux bridge name: 1-15 characters, no spaces, '/' or ':'"),
  vlanInterface: text,
  reservedHostMemoryMb: intText(0),
  removeUnusedBaseImages: boolText,
  removeUnusedOriginalMinimumAgeSeconds: intText(0),
});
export type DriverConfig = z.infer<typeof DriverConfigSchema>;

/**
 * What each key that is not free text takes, in words: a wrong type or a value out
 * of range is reported with this (zod's own wording never reaches the user).
 */
const WANT: Partial<Record<ConfigKey, string>> = {
  hostIp: HOST_WANT,
  hostPort: "a whole number from 1 to 65535",
  apiRetryCount: "a whole number from 0 to 100",
  taskPollInterval: "a number of seconds greater than 0",
  insecure: BOOL_WANT,
  useLinkedClone: BOOL_WANT,
  maximumObjects: "a whole number from 1 to 100000",
  consoleDelaySeconds: "a whole number of seconds from 0 to 3600",
  pbmEnabled: BOOL_WANT,
  reservedHostMemoryMb: "a whole number of MB, 0 or more",
  removeUnusedBaseImages: BOOL_WANT,
  removeUnusedOriginalMinimumAgeSeconds: "a whole number of seconds, 0 or more",
};

/** What a key accepts, for messages (undefined for free text). */
export function wantOf(key: ConfigKey): string | undefined {
  return WANT[key];
}

export class ConfigError extends Error {
  readonly code = "InvalidConfig";
  override get name(): string {
    return "ConfigError";
  }
}

/** Where a value came from, for error messages. */
function describeSource(key: string, source: string): string {
  return source === "config" ? `vmware:${key}` : `${source} (fallback for vmware:${key})`;
}

/**
 * Reads every key from `get` (stack config, `vmware:<key>`), then the environment,
 * then the default. Throws one ConfigError that lists every bad or missing key.
 */
export function resolveConfig(get: (key: string) => string | undefined, environment: NodeJS.ProcessEnv = process.env): DriverConfig {
  const { raw, sources } = collect(get, environment);
  const result = DriverConfigSchema.safeParse(raw);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const key = String(issue.path[0]);
    const spec = CONFIG_KEYS[key as ConfigKey] as KeySpec | undefined;
    if (raw[key] === undefined) {
      return `vmware:${key} is not set (set it with \`pulumi config set ${spec?.secret ? "--secret " : ""}vmware:${key} ...\`${spec ? ` or ${spec.env.join(" / ")}` : ""})`;
    }
    const shown = spec?.secret ? "(secret)" : JSON.stringify(raw[key]);
    return `${describeSource(key, sources[key] ?? "config")} = ${shown}: want ${describeExpected(key as ConfigKey, issue)}`;
  });
  throw new ConfigError(`invalid vCenter configuration:\n  - ${[...new Set(problems)].join("\n  - ")}`);
}

function collect(get: (key: string) => string | undefined, environment: NodeJS.ProcessEnv) {
  const raw: Record<string, unknown> = {};
  const sources: Record<string, string> = {};
  for (const [key, spec] of Object.entries(CONFIG_KEYS) as Array<[ConfigKey, KeySpec]>) {
    const fromConfig = get(key);
    if (fromConfig !== undefined && fromConfig !== "") {
      raw[key] = fromConfig;
      sources[key] = "config";
      continue;
    }
    const envName = spec.env.find((e) => environment[e] !== undefined && environment[e] !== "");
    if (envName) {
      raw[key] = environment[envName];
      sources[key] = envName;
    } else if (spec.default !== undefined) {
      raw[key] = spec.default;
      sources[key] = "default";
    }
  }
  return { raw, sources };
}

/** Where each key's value came from: "vmware:key", "ENV_NAME (fallback for vmware:key)", or its default. */
export function configSources(get: (key: string) => string | undefined, environment: NodeJS.ProcessEnv = process.env): Record<ConfigKey, string> {
  const { sources } = collect(get, environment);
  return Object.fromEntries(
    (Object.keys(CONFIG_KEYS) as ConfigKey[]).map((key) => [key, sources[key] === "default" ? `the default of vmware:${key}` : describeSource(key, sources[key] ?? "config")]),
  ) as Record<ConfigKey, string>;
}

/** vCenter refused the user name or password: says which settings to fix. */
export class InvalidCredentialsError extends Error {
  readonly code = "InvalidCredentials";
  constructor(
    readonly endpoint: string,
    readonly username: string,
    sources: Pick<Record<ConfigKey, string>, "hostUsername" | "hostPassword">,
    override readonly cause?: unknown,
  ) {
    const fromConfig = sources.hostUsername === "vmware:hostUsername" && sources.hostPassword === "vmware:hostPassword";
    super(
      `vCenter ${endpoint} refused the login of ${JSON.stringify(username)}: wrong user name or password. ` +
        `Fix ${sources.hostUsername} or ${sources.hostPassword}` +
        (fromConfig
          ? " (`pulumi config set vmware:hostUsername ...`, `pulumi config set --secret vmware:hostPassword ...`)."
          : ", or set vmware:hostUsername / vmware:hostPassword in the stack configuration (`pulumi config set --secret vmware:hostPassword ...`)."),
    );
  }
  override get name(): string {
    return "InvalidCredentialsError";
  }
}

function describeExpected(key: ConfigKey, issue: z.core.$ZodIssue): string {
  // A refinement's own message says what is wanted, and why (a bridge name, a regex...).
  if (issue.code === "custom" || (issue.code === "invalid_format" && issue.message && !issue.message.startsWith("Invalid"))) return issue.message;
  const want = WANT[key];
  if (want) return want;
  switch (issue.code) {
    case "too_small":
      return issue.origin === "string" ? "a non-empty value" : `at least ${String(issue.minimum)}`;
    case "too_big":
      return `at most ${String(issue.maximum)}`;
    default:
      return issue.message.replace(/^Invalid input: /, "").replace(/^Invalid string: must match pattern .*$/, "a valid value");
  }
}

/** The driver-core client options for a configuration. */
export function clientOptions(cfg: DriverConfig): ClientOptions {
  return {
    host: cfg.hostIp,
    port: cfg.hostPort,
    username: cfg.hostUsername,
    password: cfg.hostPassword,
    apiRetryCount: cfg.apiRetryCount,
    taskPollIntervalMs: Math.round(cfg.taskPollInterval * 1000),
    maximumObjects: cfg.maximumObjects,
    caFile: cfg.caFile,
    insecure: cfg.caFile ? false : cfg.insecure,
    thumbprint: cfg.thumbprint,
  };
}
