// Engine-protocol harness (test infrastructure): `up`, `preview`, `refresh` and
// `destroy` of a Pulumi program, each in its own process as with the Pulumi CLI,
// through the real dynamic-provider process, with state in a JSON file. For
// machines without the Pulumi CLI; where it is installed the same programs run
// with `pulumi up`.
import { execFile } from "node:child_process";
import { readFileSync, existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { PROJECT_ROOT } from "../vcsim/build.mjs";
import type { Vcsim } from "../vcsim/index.js";
import type { HarnessJob, HarnessResult, StateFile } from "./types.js";

export type { HarnessEvent, HarnessResult, StateFile, StateResource } from "./types.js";

export interface StackOptions {
  /** The program's entry (e.g. examples/quickstart/index.ts), relative to cwd. */
  program: string;
  cwd?: string;
  stateFile: string;
  config: Record<string, string>;
  secretKeys?: string[];
  project?: string;
  stack?: string;
}

export class HarnessStack {
  constructor(readonly opts: StackOptions) {}

  private run(op: HarnessJob["op"], config?: Record<string, string>): Promise<HarnessResult> {
    const job: HarnessJob = {
      op,
      program: this.opts.program,
      cwd: resolve(this.opts.cwd ?? PROJECT_ROOT),
      stateFile: resolve(this.opts.stateFile),
      config: config ?? this.opts.config,
      secretKeys: this.opts.secretKeys ?? [],
      project: this.opts.project ?? "vmware-vcenter-quickstart",
      stack: this.opts.stack ?? "dev",
    };
    const tsx = join(PROJECT_ROOT, "node_modules", ".bin", "tsx");
    return new Promise((resolvePromise, reject) => {
      execFile(
        tsx,
        [join(PROJECT_ROOT, "test", "engine", "run-program.ts")],
        { cwd: job.cwd, env: { ...process.env, HARNESS_JOB: JSON.stringify(job) }, maxBuffer: 64 * 1024 * 1024, timeout: 300_000 },
        (err, stdout, stderr) => {
          const line = stdout.split("\n").find((l) => l.startsWith("HARNESS_RESULT "));
          if (!line) {
            reject(new Error(`harness ${op} printed no result (${err?.message ?? "no error"}):\n${stderr}\n${stdout}`));
            return;
          }
          resolvePromise(JSON.parse(line.slice("HARNESS_RESULT ".length)) as HarnessResult);
        },
      );
    });
  }

  up(config?: Record<string, string>): Promise<HarnessResult> {
    return this.run("up", config);
  }

  preview(config?: Record<string, string>): Promise<HarnessResult> {
    return this.run("preview", config);
  }

  refresh(): Promise<HarnessResult> {
    return this.run("refresh");
  }

  destroy(): Promise<HarnessResult> {
    return this.run("destroy");
  }

  state(): StateFile {
    return existsSync(this.opts.stateFile) ? (JSON.parse(readFileSync(this.opts.stateFile, "utf8")) as StateFile) : { resources: [] };
  }
}

/** The stack configuration of a program against a simulator (its cluster DC0_C0, its CA). */
export function simulatorConfig(sim: Vcsim, password = sim.info.password): Record<string, string> {
  return {
    "vmware:hostIp": sim.info.host,
    "vmware:hostPort": String(sim.info.port),
    "vmware:hostUsername": sim.info.username,
    "vmware:hostPassword": password,
    ...(sim.info.caFile ? { "vmware:caFile": sim.info.caFile } : {}),
    "vmware:clusterName": "DC0_C0",
  };
}

/** A stack of `program` against a simulator, its state in `<dir>/<name>.json`, the password secret. */
export function simulatorStack(
  sim: Vcsim,
  opts: { dir: string; name: string; program?: string; password?: string; config?: Record<string, string> },
): HarnessStack {
  return new HarnessStack({
    program: opts.program ?? "test/engine/programs/port-groups.ts",
    stateFile: join(opts.dir, `${opts.name}.json`),
    config: { ...simulatorConfig(sim, opts.password), ...opts.config },
    secretKeys: ["vmware:hostPassword"],
  });
}
