// Starts and stops the embedded vCenter simulator (test infrastructure).
import { appendFileSync } from "node:fs";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { ensureVcsim } from "./build.mjs";
import { VcsimControl } from "./control.js";

export { VcsimControl } from "./control.js";
export type { FaultRule, InstalledRule, SimulatorStats } from "./control.js";

/** Topology and behaviour flags; each maps to the `--kebab-case` flag of the same name. */
export interface VcsimOptions {
  datacenters?: number;
  clusters?: number;
  hosts?: number;
  standaloneHosts?: number;
  datastores?: number;
  clusterDatastores?: number;
  localDatastores?: number;
  dvs?: boolean;
  uplinks?: number;
  dvPortgroups?: number;
  vms?: number;
  vmsPerHost?: number;
  powerOn?: boolean;
  drs?: boolean;
  tls?: boolean;
  caFile?: string;
  apiVersion?: string;
  username?: string;
  password?: string;
  /**
   * "strict": refuse (InvalidRequest) a SOAP request whose data-object elements are out of
   * XSD sequence order or unknown to their type, as vCenter's deserializer does (the default,
   * so every test proves the client's order); "off": accept any order, as govmomi's simulator.
   */
  schemaOrder?: "strict" | "off";
  /** How long an ImportVApp lease stays `initializing` before it is `ready` (default 100 ms). */
  nfcReadyMs?: number;
  /**
   * Serve ImportVApp lease uploads on a second TLS listener (127.0.0.1, another port) with a
   * certificate of its own, as an ESXi host: device URLs name it and carry its SHA-1 as
   * `sslThumbprint`, and vCenter's origin refuses them (info.nfcHostUrl, info.nfcHostThumbprint).
   */
  nfcHostTls?: boolean;
  /** With nfcHostTls: the `sslThumbprint` leases give instead of the host's own ("none": leave it out). */
  nfcHostThumbprint?: string;
  /** Fault rules installed before the first request (JSON, as for the control endpoint). */
  faults?: object[];
}

export interface VcsimClusterInfo {
  name: string;
  hosts: string[];
  drs: boolean;
}

export interface VcsimDatacenterInfo {
  name: string;
  clusters: VcsimClusterInfo[];
  standaloneHosts: string[];
  datastores: string[];
  networks: string[];
  distributedSwitches: string[];
}

/** The simulator's first stdout line. */
export interface VcsimInfo {
  url: string;
  host: string;
  port: number;
  username: string;
  password: string;
  tls: boolean;
  caFile?: string;
  /** SHA-1 thumbprint of the server certificate, colon-separated hex (vSphere style). */
  thumbprint?: string;
  thumbprintSha256?: string;
  /** With nfcHostTls: the NFC host's origin (https://127.0.0.1:port) and its certificate's SHA-1. */
  nfcHostUrl?: string;
  nfcHostThumbprint?: string;
  controlUrl: string;
  apiVersion: string;
  pid: number;
  startupMs: number;
  inventory: { datacenters: VcsimDatacenterInfo[]; vms: number };
}

export interface Vcsim {
  info: VcsimInfo;
  control: VcsimControl;
  /** Stops the simulator and waits for it to exit (its temp folders are removed). */
  stop(): Promise<void>;
}

/** Turns options into command-line flags. */
export function vcsimArgs(options: VcsimOptions): string[] {
  const args: string[] = [];
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined || key === "faults") continue;
    const flag = `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    args.push(typeof value === "boolean" ? `${flag}=${value}` : `${flag}=${String(value)}`);
  }
  for (const fault of options.faults ?? []) args.push(`--fault=${JSON.stringify(fault)}`);
  return args;
}

/**
 * Starts a simulator on a free loopback port and resolves once it answers.
 * It also exits by itself when this process dies (its stdin closes).
 */
export async function startVcsim(options: VcsimOptions = {}, startTimeoutMs = 60_000): Promise<Vcsim> {
  const binary = ensureVcsim({ quiet: true });
  // VCSIM_LOG=<file>: the simulator's whole stderr (its request log, panics) appended there, for debugging.
  const logFile = process.env.VCSIM_LOG;
  const child = spawn(binary, ["--exit-on-stdin-eof", ...(logFile ? [] : ["--quiet"]), ...vcsimArgs(options)], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
    if (logFile) appendFileSync(logFile, d);
  });
  const info = await new Promise<VcsimInfo>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`vcsim did not start within ${startTimeoutMs} ms: ${stderr}`));
    }, startTimeoutMs);
    const lines = createInterface({ input: child.stdout! });
    lines.once("line", (line) => {
      clearTimeout(timer);
      lines.close();
      try {
        resolve(JSON.parse(line) as VcsimInfo);
      } catch {
        reject(new Error(`vcsim printed no JSON ready line: ${line}`));
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`vcsim exited (${code}) before it was ready: ${stderr.trim()}`));
    });
  });
  child.removeAllListeners("exit");
  return { info, control: new VcsimControl(info.controlUrl), stop: () => stopChild(child) };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.once("exit", () => {
      clearTimeout(killer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}
