// The module the dynamic-provider process loads (`pulumi-vmware-vcenter/handler`):
// it holds the process's configuration and its one vCenter session, routes each
// call to the resource's handler, and logs the session out when the process ends.
//
// How the Pulumi engine ends this process (pulumi/pulumi, sdk/go/common/resource/
// plugin: Plugin.Close and the kill function of ExecPlugin): it closes its gRPC
// connection, sends SIGINT to the plugin's process group, waits up to 5 s for it to
// exit, then SIGKILLs the group. So the SIGINT is the chance to log out; a listener
// for it replaces Node's default exit, so the listener exits itself.
import { isMainThread } from "node:worker_threads";
import { CONFIG_KEYS, ConfigError, InvalidCredentialsError, clientOptions, configSources, resolveConfig, type DriverConfig } from "./config.js";
import { forEngine } from "./resources/detailed-diff.js";
import type { DetailedDiffResult, HandlerContext, ResourceHandler } from "./resources/handler-types.js";
import { imageHandler } from "./resources/image.js";
import { imageCachePolicyHandler } from "./resources/image-cache-policy.js";
import { instanceHandler } from "./resources/instance.js";
import { portGroupHandler } from "./resources/port-group.js";
import { VimClient } from "./vsphere/client.js";
import { InvalidLoginFault } from "./vsphere/errors.js";

const HANDLERS: Record<string, ResourceHandler> = {
  PortGroup: portGroupHandler,
  Image: imageHandler,
  Instance: instanceHandler,
  ImageCachePolicy: imageCachePolicyHandler,
};

type Getter = (key: string) => string | undefined;

let getter: Getter = () => undefined;
let seen: string | undefined;
let resolved: { config: DriverConfig } | { error: unknown } | undefined;
let client: Promise<VimClient> | undefined;
/** Every session this process opened and has not closed yet. */
const opened = new Set<Promise<VimClient>>();

/** Well under the engine's 5 s between SIGINT and SIGKILL. */
const SHUTDOWN_MS = 2000;
const LOGOUT_MS = 1500;

/**
 * Called by the dynamic-provider host with the stack configuration, once for each
 * provider object (so once per resource kind): the same configuration keeps the
 * session it has; another one starts afresh.
 */
export async function configure(req: { config: { get(key: string): unknown } }): Promise<void> {
  const next: Getter = (key) => {
    const v = req.config.get(`vmware:${key}`);
    return v === undefined || v === null ? undefined : typeof v === "string" ? v : JSON.stringify(v);
  };
  const snapshot = JSON.stringify(Object.keys(CONFIG_KEYS).map((k) => next(k)));
  if (snapshot === seen) return;
  seen = snapshot;
  getter = next;
  resolved = undefined;
  const previous = client;
  client = undefined;
  if (previous) {
    opened.delete(previous);
    previous.then((c) => c.close()).catch(() => {});
  }
}

function connect(cfg: DriverConfig): Promise<VimClient> {
  const made = VimClient.connect(clientOptions(cfg)).catch((err: unknown) => {
    // The driver core knows no stack config: name the keys (or variables) to fix here.
    if (err instanceof InvalidLoginFault) {
      throw new InvalidCredentialsError(`${cfg.hostIp}:${cfg.hostPort}`, cfg.hostUsername, configSources(getter), err);
    }
    throw err;
  });
  opened.add(made);
  made.catch(() => opened.delete(made));
  installExitHandlers();
  return made;
}

/**
 * Logs out every session this process opened, each with one attempt of at most
 * `logoutMs`. Resolves with whether every logout was confirmed.
 */
export async function closeSessions(logoutMs = LOGOUT_MS): Promise<boolean> {
  const all = [...opened];
  opened.clear();
  client = undefined;
  const done = await Promise.all(all.map((p) => p.then((c) => c.close({ timeoutMs: logoutMs }), () => true)));
  return done.every(Boolean);
}

let exitHandlersInstalled = false;

function installExitHandlers(): void {
  // Signals reach the main thread only; a worker (a test runner's) leaves them alone.
  if (exitHandlersInstalled || !isMainThread) return;
  exitHandlersInstalled = true;
  const onSignal = (): void => {
    const deadline = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), SHUTDOWN_MS).unref());
    void Promise.race([closeSessions(), deadline]).then((clean) => process.exit(clean ? 0 : 1));
  };
  // `once`: a second signal during the logout gets Node's default, an immediate exit.
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  // The loop ran dry (no engine connection left): log out on the way out.
  process.once("beforeExit", () => {
    void closeSessions();
  });
}

const context: HandlerContext = {
  config() {
    if (!resolved) {
      try {
        resolved = { config: resolveConfig(getter) };
      } catch (error) {
        resolved = { error };
      }
    }
    if ("error" in resolved) throw resolved.error;
    return resolved.config;
  },
  client() {
    if (!client) {
      const made = connect(context.config());
      client = made;
      // A failed connection is not cached: the next call tries again.
      made.catch(() => {
        if (client === made) client = undefined;
      });
    }
    return client;
  },
};

/** Routes one provider call: `handle("PortGroup", "create", inputs)`. */
export async function handle(kind: string, op: keyof ResourceHandler, ...args: unknown[]): Promise<unknown> {
  const handler = HANDLERS[kind];
  if (!handler) throw new Error(`unknown resource kind ${kind} (this version of pulumi-vmware-vcenter knows ${Object.keys(HANDLERS).join(", ")})`);
  const fn = handler[op] as (ctx: HandlerContext, ...a: unknown[]) => Promise<unknown>;
  const result = await fn.call(handler, context, ...args);
  // The stock host passes no detailed diff on: detailed-diff.ts carries it, in the host only.
  return op === "diff" ? forEngine(result as DetailedDiffResult) : result;
}

export { ConfigError, InvalidCredentialsError };
