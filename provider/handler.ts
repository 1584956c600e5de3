// The module the dynamic-provider process loads (`pulumi-vmware-vcenter/handler`):
// it holds the process's configuration and its one vCenter session, and routes each
// call to the resource's handler.
import { CONFIG_KEYS, ConfigError, clientOptions, resolveConfig, type DriverConfig } from "./config.js";
import type { HandlerContext, ResourceHandler } from "./resources/handler-types.js";
import { portGroupHandler } from "./resources/port-group.js";
import { VimClient } from "./vsphere/client.js";

const HANDLERS: Record<string, ResourceHandler> = {
  PortGroup: portGroupHandler,
};

type Getter = (key: string) => string | undefined;

let getter: Getter = () => undefined;
let seen: string | undefined;
let resolved: { config: DriverConfig } | { error: unknown } | undefined;
let client: Promise<VimClient> | undefined;

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
  previous?.then((c) => c.close()).catch(() => {});
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
      const opts = clientOptions(context.config());
      client = VimClient.connect(opts);
      // A failed connection is not cached: the next call tries again.
      client.catch(() => {
        client = undefined;
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
  return fn.call(handler, context, ...args);
}

export { ConfigError };
