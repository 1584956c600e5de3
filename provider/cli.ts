#!/usr/bin/env node
// `npx pulumi-vmware-vcenter cache sweep|list`: the cache sweeper for cron, outside any
// Pulumi stack. It reads the provider's settings from the same environment variables
// the provider falls back to (VMWARE_HOST_IP / VSPHERE_SERVER, VMWARE_HOST_USERNAME /
// VSPHERE_USER, ...; config.ts CONFIG_KEYS), flags override the few a sweep needs, and
// it sweeps the datastores of vmware:clusterName that datastoreRegex matches (all of
// the cluster's accessible ones without it).
//
// Output: a table on stdout (or the report as JSON with --json), a progress line per
// datastore on stderr. Exit codes: 0 done, 1 a failure (a datastore's error included),
// 2 a usage or configuration error. The session is logged out at the end, and on
// SIGINT / SIGTERM.
import { parseArgs } from "node:util";
import { ConfigError, InvalidCredentialsError, clientOptions, configSources, resolveConfig, type DriverConfig } from "./config.js";
import { listCache, sweepCache, type DatastoreSweep, type ImageSweep, type SweepReport } from "./vsphere/cache-sweep.js";
import { VimClient } from "./vsphere/client.js";
import { sweepDatastores } from "./vsphere/datastore-select.js";
import { InvalidLoginFault } from "./vsphere/errors.js";
import { cachePrefixSchema } from "./vsphere/image-cache.js";
import { findCluster, getDatastores } from "./vsphere/inventory.js";

const USAGE = `usage: pulumi-vmware-vcenter cache sweep [--dry-run] [--json] [--datastore-regex RE] [--cache-prefix P] [--min-age SECONDS] [--staging-grace SECONDS]
       pulumi-vmware-vcenter cache list [--json] [--datastore-regex RE] [--cache-prefix P]

Settings come from the environment, as the provider's fallbacks: VMWARE_HOST_IP (or
VSPHERE_SERVER), VMWARE_HOST_PORT, VMWARE_HOST_USERNAME (VSPHERE_USER),
VMWARE_HOST_PASSWORD (VSPHERE_PASSWORD), VMWARE_CLUSTER_NAME, VMWARE_DATASTORE_REGEX,
VMWARE_CACHE_PREFIX, VMWARE_CA_FILE, VMWARE_INSECURE (VSPHERE_ALLOW_UNVERIFIED_SSL),
VMWARE_THUMBPRINT, VMWARE_REMOVE_UNUSED_BASE_IMAGES, VMWARE_REMOVE_UNUSED_ORIGINAL_MINIMUM_AGE_SECONDS,
VMWARE_MAXIMUM_OBJECTS (VMs per page of the one pass over all VMs: 1000 reads 2,000 VMs in 2 calls).
Flags override them. Exit code: 0 done, 1 a failure (any datastore's), 2 a usage or configuration error.`;

class UsageError extends Error {
  readonly code = "Usage";
}

interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
  env: NodeJS.ProcessEnv;
}

interface Command {
  verb: "sweep" | "list";
  json: boolean;
  dryRun: boolean;
  datastoreRegex: string | undefined;
  cachePrefix: string | undefined;
  minAge: number | undefined;
  stagingGrace: number | undefined;
}

function seconds(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${flag} ${JSON.stringify(v)}: want a whole number of seconds`);
  return Number(v);
}

function parse(argv: string[]): Command {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        "dry-run": { type: "boolean", default: false },
        json: { type: "boolean", default: false },
        "datastore-regex": { type: "string" },
        "cache-prefix": { type: "string" },
        "min-age": { type: "string" },
        "staging-grace": { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values: v, positionals } = parsed;
  if (v.help) throw new UsageError("");
  const [group, verb, ...rest] = positionals;
  if (group !== "cache" || (verb !== "sweep" && verb !== "list") || rest.length) {
    throw new UsageError(positionals.length ? `unknown command: ${positionals.join(" ")}` : "no command given");
  }
  if (verb === "list") {
    for (const f of ["dry-run", "min-age", "staging-grace"] as const) if (v[f] !== undefined && v[f] !== false) throw new UsageError(`--${f} is for cache sweep`);
  }
  if (v["datastore-regex"] !== undefined) {
    try {
      new RegExp(v["datastore-regex"]);
    } catch {
      throw new UsageError(`--datastore-regex ${JSON.stringify(v["datastore-regex"])}: not a valid regular expression`);
    }
  }
  if (v["cache-prefix"] !== undefined && !cachePrefixSchema.safeParse(v["cache-prefix"]).success) {
    throw new UsageError(`--cache-prefix ${JSON.stringify(v["cache-prefix"])}: letters, digits, '.', '_' or '-' (or empty)`);
  }
  return {
    verb,
    json: v.json,
    dryRun: v["dry-run"],
    datastoreRegex: v["datastore-regex"],
    cachePrefix: v["cache-prefix"],
    minAge: seconds("min-age", v["min-age"]),
    stagingGrace: seconds("staging-grace", v["staging-grace"]),
  };
}

// ---------------------------------------------------------------------------
// Output

function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

function note(i: ImageSweep): string {
  const parts: string[] = [];
  if (i.users.length) parts.push(`used by ${i.users.join(", ")}`);
  if (i.markedAt) parts.push(`unused since ${i.markedAt}`);
  if (i.reason) parts.push(i.reason);
  else if (i.holders?.length) parts.push(`held by ${i.holders.join(", ")}`);
  return parts.join("; ");
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join("  ").trimEnd()).join("\n");
}

function renderDatastores(datastores: DatastoreSweep[], withTotals: boolean): string {
  const rows = [["DATASTORE", "IMAGE", "STATE", "SIZE", "NOTE"]];
  for (const d of datastores) for (const i of d.images) rows.push([d.datastore, i.imageId, i.state, humanBytes(i.bytes), note(i)]);
  const lines = [rows.length > 1 ? table(rows) : "no cached images"];
  for (const d of datastores) {
    const extra: string[] = [];
    if (withTotals) extra.push(`${humanBytes(d.bytesFreed)} freed`);
    if (d.stagingCleaned.length) extra.push(`staging folders cleaned: ${d.stagingCleaned.join(", ")}`);
    if (d.shadowCleaned.length) extra.push(`shadow VM folders cleaned: ${d.shadowCleaned.join(", ")}`);
    for (const e of d.errors) extra.push(`ERROR ${e}`);
    if (extra.length) lines.push(`${d.datastore}: ${extra.join("; ")}`);
  }
  return `${lines.join("\n")}\n`;
}

function renderSweep(r: SweepReport): string {
  const freed = r.datastores.reduce((n, d) => n + d.bytesFreed, 0);
  const head = r.dryRun ? "dry run: nothing was changed\n" : "";
  return `${head}${renderDatastores(r.datastores, true)}total: ${humanBytes(freed)} freed${r.dryRun ? " (would be)" : ""}, ${r.roundTrips ?? "?"} vCenter calls, ${r.startedAt} .. ${r.finishedAt}\n`;
}

function progressLine(ds: string, d: DatastoreSweep): string {
  const count = (s: ImageSweep["state"]) => d.images.filter((i) => i.state === s).length;
  const removed = count("removed") + count("would-remove");
  return `${ds}: ${d.images.length} images, ${count("in-use")} in use, ${count("marked")} marked, ${count("aging")} aging, ${removed} removed, ${humanBytes(d.bytesFreed)} freed, ${d.stagingCleaned.length + d.shadowCleaned.length} leftover folders, ${d.errors.length} errors\n`;
}

// ---------------------------------------------------------------------------

async function main(argv: string[], io: Io): Promise<number> {
  let cmd: Command;
  let cfg: DriverConfig;
  try {
    cmd = parse(argv);
    cfg = resolveConfig(() => undefined, io.env);
    if (!cfg.clusterName) throw new ConfigError("vmware:clusterName is not set (set VMWARE_CLUSTER_NAME): the cache swept is that of the cluster's datastores");
  } catch (err) {
    if (err instanceof UsageError) {
      if (!err.message) {
        io.out(`${USAGE}\n`);
        return 0;
      }
      io.err(`${err.message}\n${USAGE}\n`);
      return 2;
    }
    if (err instanceof ConfigError) {
      io.err(`${err.message}\n`);
      return 2;
    }
    throw err;
  }

  let client: VimClient | undefined;
  let interrupted: NodeJS.Signals | undefined;
  // A signal logs the session out and ends the process (128 + the signal's number, as a shell says it);
  // the call in flight then fails for want of a session, which is not worth a message.
  const stop = (signal: NodeJS.Signals) => {
    interrupted = signal;
    io.err(`interrupted (${signal}): logging out\n`);
    void (client?.close({ timeoutMs: 1500 }) ?? Promise.resolve(false)).finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  try {
    client = await VimClient.connect(clientOptions(cfg)).catch((err: unknown) => {
      if (err instanceof InvalidLoginFault) throw new InvalidCredentialsError(`${cfg.hostIp}:${cfg.hostPort}`, cfg.hostUsername, configSources(() => undefined, io.env), err);
      throw err;
    });
    const cluster = await findCluster(client, cfg.clusterName!);
    // As the ImageCachePolicy resource chooses them (datastore-select.ts sweepDatastores).
    const datastores = sweepDatastores(cluster.name, await getDatastores(client, cluster.datastores), { datastoreRegex: cmd.datastoreRegex ?? cfg.datastoreRegex });
    const cachePrefix = cmd.cachePrefix ?? cfg.cachePrefix ?? "";
    if (cmd.verb === "list") {
      const list = await listCache(client, { datacenter: cluster.datacenter, datastores, cachePrefix });
      io.out(cmd.json ? `${JSON.stringify({ datastores: list }, null, 2)}\n` : renderDatastores(list, false));
      return list.some((d) => d.errors.length) ? 1 : 0;
    }
    const report = await sweepCache(client, {
      datacenter: cluster.datacenter,
      datastores,
      cachePrefix,
      removeUnused: cfg.removeUnusedBaseImages,
      minAgeSeconds: cmd.minAge ?? cfg.removeUnusedOriginalMinimumAgeSeconds,
      ...(cmd.stagingGrace !== undefined ? { stagingGraceSeconds: cmd.stagingGrace } : {}),
      dryRun: cmd.dryRun,
      onDatastore: (ds, d) => io.err(progressLine(ds, d)),
    });
    io.out(cmd.json ? `${JSON.stringify(report, null, 2)}\n` : renderSweep(report));
    return report.datastores.some((d) => d.errors.length) ? 1 : 0;
  } catch (err) {
    if (!interrupted) io.err(`pulumi-vmware-vcenter cache ${cmd.verb}: ${(err as Error).message}\n`);
    return 1;
  } finally {
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    await client?.close();
  }
}

void main(process.argv.slice(2), { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t), env: process.env }).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`pulumi-vmware-vcenter: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  },
);
