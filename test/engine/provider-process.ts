// Engine-protocol harness (test infrastructure): starts
// `@pulumi/pulumi/cmd/dynamic-provider` — the very process the Pulumi engine runs for
// dynamic resources — and speaks the ResourceProvider gRPC protocol to it, as the
// engine does: Configure, Check, Diff, Create, Read, Update, Delete; and ends it as
// the engine does (see stop()).
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";
import { createInterface } from "node:readline";



/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;

export interface CheckFailure {
  property: string;
  reason: string;
}

/** How one property changes: the engine's PropertyDiff. */
export interface PropertyDiff {
  kind: "ADD" | "ADD_REPLACE" | "DELETE" | "DELETE_REPLACE" | "UPDATE" | "UPDATE_REPLACE";
  inputDiff: boolean;
}

export interface DiffResult {
  changes: "some" | "none" | "unknown";
  replaces: string[];
  deleteBeforeReplace: boolean;
  /** The response's `diffs` (changed top-level properties), when it lists any. */
  diffs?: string[];
  /** The response's detailedDiff, when it has one (hasDetailedDiff): property path -> change. */
  detailedDiff?: Record<string, PropertyDiff>;
}

/** How the provider process ended. */
export interface ProviderExit {
  /** "exited": by itself after the SIGINT; "killed": by the SIGKILL after the grace period. */
  how: "exited" | "killed";
  code: number | null;
  signal: NodeJS.Signals | null;
  /** From the SIGINT to the exit. */
  ms: number;
}

/** The engine's grace period between SIGINT and SIGKILL (pulumi/pulumi plugin.go). */
export const ENGINE_GRACE_MS = 5000;

/** A provider call that failed in the provider process (its message is the provider's). */
export class ProviderCallError extends Error {
  constructor(
    readonly op: string,
    readonly urn: string,
    message: string,
  ) {
    super(message);
  }
}

export class DynamicProviderProcess {
  private constructor(
    private readonly child: ChildProcess,
    private readonly client: Any,
    private readonly modules: { proto: Any; struct: Any; grpc: Any },
    readonly stderr: () => string,
  ) {}

  /**
   * Starts the provider process in `cwd` (the program's folder: the serialized
   * providers `require` this package from its node_modules there).
   */
  static async start(cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<DynamicProviderProcess> {
    const req = createRequire(join(cwd, "package.json"));
    const entry = req.resolve("@pulumi/pulumi/cmd/dynamic-provider/index.js");
    const grpc = req("@grpc/grpc-js");
    const proto = req("@pulumi/pulumi/proto/provider_pb");
    const rpc = req("@pulumi/pulumi/proto/provider_grpc_pb");
    const struct = req("google-protobuf/google/protobuf/struct_pb");
    // The engine passes its own address; this harness plays the engine but needs no callback.
    // Detached: the process leads its own process group, as the engine starts plugins
    // (Setpgid), so signals go to the group and a terminal's Ctrl-C does not reach it.
    const child = spawn(process.execPath, [entry, "127.0.0.1:0"], { cwd, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    // Should this process die first, take the group down with it.
    const reap = () => signalGroup(child, "SIGKILL");
    process.once("exit", reap);
    child.once("exit", () => process.removeListener("exit", reap));
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-20_000);
    });
    const port = await new Promise<number>((resolve, reject) => {
      const lines = createInterface({ input: child.stdout! });
      lines.once("line", (l) => resolve(Number(l.trim())));
      child.once("exit", (code) => reject(new Error(`dynamic-provider exited (${code}): ${stderr}`)));
    });
    const client = new rpc.ResourceProviderClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    return new DynamicProviderProcess(child, client, { proto, struct, grpc }, () => stderr);
  }

  private call<T>(op: string, urn: string, request: Any): Promise<T> {
    return new Promise((resolve, reject) => {
      this.client[op](request, (err: Any, resp: T) => {
        if (err) reject(new ProviderCallError(op, urn, String(err.details ?? err.message).replace(/^\d+ [A-Z_]+: /, "")));
        else resolve(resp);
      });
    });
  }

  /**
   * Properties as the engine sends them to this provider. The dynamic provider answers
   * configure with acceptSecrets: false, so the engine takes the secret wrappers off
   * before every call (and puts them back on the outputs: see annotateSecrets).
   */
  private struct(v: Record<string, unknown>): Any {
    return this.modules.struct.Struct.fromJavaScript(unwrapSecrets(JSON.parse(JSON.stringify(v))) as Record<string, unknown>);
  }

  /** Configure with the stack configuration, as `project:key` -> value. */
  async configure(config: Record<string, string>): Promise<void> {
    const req = new this.modules.proto.ConfigureRequest();
    req.setArgs(this.struct(config));
    const vars = req.getVariablesMap();
    for (const [k, v] of Object.entries(config)) vars.set(k, v);
    await this.call("configure", "", req);
  }

  async check(urn: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<{ inputs: Record<string, unknown>; failures: CheckFailure[] }> {
    const req = new this.modules.proto.CheckRequest();
    req.setUrn(urn);
    req.setOlds(this.struct(olds));
    req.setNews(this.struct(news));
    const resp: Any = await this.call("check", urn, req);
    return {
      inputs: resp.getInputs()?.toJavaScript() ?? {},
      failures: resp.getFailuresList().map((f: Any) => ({ property: f.getProperty(), reason: f.getReason() })),
    };
  }

  async diff(urn: string, id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<DiffResult> {
    const req = new this.modules.proto.DiffRequest();
    req.setUrn(urn);
    req.setId(id);
    req.setOlds(this.struct(olds));
    req.setNews(this.struct(news));
    const resp: Any = await this.call("diff", urn, req);
    const C = this.modules.proto.DiffResponse.DiffChanges;
    const changes = resp.getChanges() === C.DIFF_SOME ? "some" : resp.getChanges() === C.DIFF_NONE ? "none" : "unknown";
    const result: DiffResult = { changes, replaces: resp.getReplacesList(), deleteBeforeReplace: resp.getDeletebeforereplace() };
    const diffs: string[] = resp.getDiffsList();
    if (diffs.length) result.diffs = diffs;
    if (resp.getHasdetaileddiff()) {
      const kinds = Object.fromEntries(Object.entries(this.modules.proto.PropertyDiff.Kind as Record<string, number>).map(([name, n]) => [n, name]));
      const detail: Record<string, PropertyDiff> = {};
      resp.getDetaileddiffMap().forEach((d: Any, path: string) => {
        detail[path] = { kind: kinds[d.getKind()] as PropertyDiff["kind"], inputDiff: d.getInputdiff() };
      });
      result.detailedDiff = detail;
    }
    return result;
  }

  async create(urn: string, props: Record<string, unknown>): Promise<{ id: string; outs: Record<string, unknown> }> {
    const req = new this.modules.proto.CreateRequest();
    req.setUrn(urn);
    req.setProperties(this.struct(props));
    const resp: Any = await this.call("create", urn, req);
    return { id: resp.getId(), outs: resp.getProperties()?.toJavaScript() ?? {} };
  }

  async read(urn: string, id: string, props: Record<string, unknown>, inputs: Record<string, unknown>): Promise<{ id: string; props: Record<string, unknown> }> {
    const req = new this.modules.proto.ReadRequest();
    req.setUrn(urn);
    req.setId(id);
    req.setProperties(this.struct(props));
    req.setInputs(this.struct(inputs));
    const resp: Any = await this.call("read", urn, req);
    return { id: resp.getId(), props: resp.getProperties()?.toJavaScript() ?? {} };
  }

  async update(urn: string, id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<Record<string, unknown>> {
    const req = new this.modules.proto.UpdateRequest();
    req.setUrn(urn);
    req.setId(id);
    req.setOlds(this.struct(olds));
    req.setNews(this.struct(news));
    const resp: Any = await this.call("update", urn, req);
    return resp.getProperties()?.toJavaScript() ?? {};
  }

  async delete(urn: string, id: string, props: Record<string, unknown>): Promise<void> {
    const req = new this.modules.proto.DeleteRequest();
    req.setUrn(urn);
    req.setId(id);
    req.setProperties(this.struct(props));
    await this.call("delete", urn, req);
  }

  /**
   * Ends the process exactly as the Pulumi engine does (pulumi/pulumi sdk/go/common/
   * resource/plugin/plugin.go, Plugin.Close and ExecPlugin's kill; cmdutil's
   * InterruptChildren): close the gRPC connection, SIGINT the process group, wait
   * up to 5 s for the process to exit, then SIGKILL the group. Says how it ended.
   */
  async stop(graceMs = ENGINE_GRACE_MS): Promise<ProviderExit> {
    this.client.close();
    const child = this.child;
    if (child.exitCode !== null || child.signalCode !== null) return { how: "exited", code: child.exitCode, signal: child.signalCode, ms: 0 };
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
    const started = Date.now();
    signalGroup(child, "SIGINT");
    // The grace period is the engine's own timer, which this harness reproduces.
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), graceMs)));
    const first = await Promise.race([exited, grace]);
    clearTimeout(timer);
    if (first) return { how: "exited", ...first, ms: Date.now() - started };
    signalGroup(child, "SIGKILL");
    return { how: "killed", ...(await exited), ms: Date.now() - started };
  }
}

function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
  } catch {
    // The group is gone already.
  }
}

/** Pulumi's serialized secret: `{ [SECRET_SIG]: SECRET_VALUE, value }`. */
export const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270";

export function isSecret(v: unknown): v is { value: unknown } {
  return typeof v === "object" && v !== null && (v as Record<string, unknown>)[SECRET_SIG] === SECRET_VALUE;
}

export function unwrapSecrets(v: unknown): unknown {
  if (isSecret(v)) return unwrapSecrets(v.value);
  if (Array.isArray(v)) return v.map(unwrapSecrets);
  if (typeof v === "object" && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrapSecrets(x)]));
  return v;
}

/**
 * The engine's annotateSecrets (pulumi's provider_plugin.go) for a provider that does not
 * accept secrets: an output whose input of the same name was secret is stored secret.
 */
export function annotateSecrets(outs: Record<string, unknown>, ins: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(outs).map(([k, v]) => [k, isSecret(ins[k]) && !isSecret(v) ? { [SECRET_SIG]: SECRET_VALUE, value: v } : v]));
}
