// What the engine tests (image, instance, instance-faults, image-cache-policy) share:
// a simulator stack whose program reads its resources from one JSON config key, the
// harness result and state read by resource name, and a datastore folder's names.
import { expect } from "vitest";
import type { VimClient } from "../../provider/vsphere/client.js";
import { listFolderIfExists, type PathLike } from "../../provider/vsphere/datastore.js";
import type { Datacenter } from "../../provider/vsphere/inventory.js";
import type { Vcsim } from "../vcsim/index.js";
import { simulatorStack, type HarnessEvent, type HarnessResult, type HarnessStack, type StateResource } from "./index.js";

export type SpecStack<Spec> = HarnessStack & { set(next: Spec): void };

export interface SpecStackOptions {
  dir: string;
  name: string;
  /** The program, e.g. test/engine/programs/instances.ts. */
  program: string;
  password: string;
  /** The config key the program reads its spec from (JSON), e.g. insttest:spec. */
  specKey: string;
  /** vmware:cachePrefix, unless `config` sets it. */
  cachePrefix: string;
}

/** A simulator stack running `program` on `spec`; `set` gives the next operation another spec. */
export function specStack<Spec>(sim: Vcsim, opts: SpecStackOptions, spec: Spec, config: Record<string, string> = {}): SpecStack<Spec> {
  const s = simulatorStack(sim, {
    dir: opts.dir,
    name: opts.name,
    program: opts.program,
    password: opts.password,
    config: { "vmware:cachePrefix": opts.cachePrefix, ...config, [opts.specKey]: JSON.stringify(spec) },
  });
  return Object.assign(s, {
    set(next: Spec) {
      s.opts.config[opts.specKey] = JSON.stringify(next);
    },
  });
}

/** The operation's result, after asserting it had no errors. */
export function ok(r: HarnessResult): HarnessResult {
  expect(r.errors).toEqual([]);
  return r;
}

/** The state's resource of that name (throws when there is none). */
export function resource(s: HarnessStack, name: string): StateResource {
  const r = s.state().resources.find((x) => x.name === name);
  if (!r) throw new Error(`no ${name} in the state`);
  return r;
}

/** The state's outputs of the resource of that name. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read outputs of every shape
export const outs = (s: HarnessStack, name: string) => resource(s, name).outputs as Record<string, any>;

/** The operation's event of the resource of that name (its URN ends with `::name`). */
export const eventOf = (r: HarnessResult, name: string): HarnessEvent | undefined => r.events.find((e) => e.key.endsWith(`::${name}`));

/** The names in a datastore folder, sorted; undefined when the folder does not exist. */
export async function folderNames(client: VimClient, dc: Datacenter, path: PathLike): Promise<string[] | undefined> {
  return (await listFolderIfExists(client, dc, path))?.map((e) => e.name).sort();
}
