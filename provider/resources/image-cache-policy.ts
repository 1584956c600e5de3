// ImageCachePolicy: Nova's image cache manager as a resource. Nova ages out cached
// images on a timer (remove_unused_base_images, remove_unused_original_minimum_age_seconds,
// cache_prefix); Pulumi has no timer, so a `pulumi up` is the tick: create and update
// sweep the cache (provider/vsphere/cache-sweep.ts), and an up after the interval is an
// update. The state holds what the last sweep did.
import * as pulumi from "@pulumi/pulumi";
import type { VimClient } from "../vsphere/client.js";
import { sweepCache } from "../vsphere/cache-sweep.js";
import { sweepDatastores } from "../vsphere/datastore-select.js";
import { NotFoundError } from "../vsphere/errors.js";
import { getDatastores, type Cluster, type Datastore } from "../vsphere/inventory.js";
import { checkFailures, stripProvider, unknownInputFailures } from "./check.js";
import { clusterOf } from "./cluster-lookup.js";
import { changeKind, withDetail, type DetailEntry } from "./detailed-diff.js";
import type { HandlerContext, ResourceHandler } from "./handler-types.js";
import { UNKNOWN, isUnknown } from "./handler-types.js";
import {
  COMPUTED_INPUT_KEYS,
  INPUT_KEYS,
  InputsSchema,
  REPLACE_KEYS,
  changedInputs,
  reportOf,
  schedule,
  type DatastoreReport,
  type ImageCachePolicyArgs,
  type Resolved,
  type SweepSummary,
} from "./image-cache-policy-inputs.js";
import { dynamicProvider } from "./provider.js";

export type { DatastoreReport, ImageCachePolicyArgs, SweepSummary } from "./image-cache-policy-inputs.js";

/** What the state holds (outputs). */
export interface ImageCachePolicyState extends Resolved {
  /** The cluster's datacenter. */
  datacenter: string;
  /** The datastores the last sweep looked at. */
  sweptDatastores: string[];
  /** When the last sweep ended (ISO); it began at lastSweepStarted. */
  lastSweep: string;
  lastSweepStarted: string;
  /** Per datastore: images in use (and by which VMs), marked, aging, removed, kept; bytes freed; staging folders cleaned. */
  report: DatastoreReport[];
  summary: SweepSummary;
}

const OUTPUT_KEYS = [...COMPUTED_INPUT_KEYS, "datacenter", "sweptDatastores", "lastSweep", "lastSweepStarted", "report", "summary"];

/**
 * Keeps the datastore image cache tidy, as Nova's image cache manager: each sweep
 * marks cached images no VM uses (an age marker `ts-<UTC time>` in the image folder),
 * removes those unused longer than the minimum age, unmarks those used again, and
 * removes the staging and shadow-VM folders failed work left. Never an image in use,
 * by any VM.
 *
 * Create and update sweep; a `pulumi up` when the last sweep is older than
 * sweepIntervalSeconds is an update (the preview says why, as `sweepDue`). Delete
 * removes the policy only, never an image.
 *
 * The resource id is `imagecache:<clusterName>:<cachePrefix>`; another cluster or cache
 * prefix is another policy (replaced).
 */
export class ImageCachePolicy extends pulumi.dynamic.Resource {
  declare readonly cachePrefix: pulumi.Output<string>;
  declare readonly removeUnusedBaseImages: pulumi.Output<boolean>;
  declare readonly removeUnusedOriginalMinimumAgeSeconds: pulumi.Output<number>;
  declare readonly datastores: pulumi.Output<string[] | undefined>;
  declare readonly datastoreRegex: pulumi.Output<string | undefined>;
  declare readonly clusterName: pulumi.Output<string>;
  declare readonly sweepIntervalSeconds: pulumi.Output<number>;
  declare readonly stagingGraceSeconds: pulumi.Output<number>;
  declare readonly dryRun: pulumi.Output<boolean>;
  declare readonly sweepDue: pulumi.Output<string>;
  declare readonly sweepRequestedAt: pulumi.Output<string>;
  declare readonly datacenter: pulumi.Output<string>;
  declare readonly sweptDatastores: pulumi.Output<string[]>;
  declare readonly lastSweep: pulumi.Output<string>;
  declare readonly lastSweepStarted: pulumi.Output<string>;
  declare readonly report: pulumi.Output<DatastoreReport[]>;
  declare readonly summary: pulumi.Output<SweepSummary>;

  constructor(name: string, args: ImageCachePolicyArgs = {}, opts?: pulumi.CustomResourceOptions) {
    // Every declared property in the inputs, or the engine never makes it an output.
    super(
      imageCachePolicyProvider,
      name,
      { ...Object.fromEntries([...INPUT_KEYS, ...OUTPUT_KEYS].map((k) => [k, undefined])), ...args },
      opts,
      "vmware",
      "ImageCachePolicy",
    );
  }
}

const imageCachePolicyProvider = dynamicProvider("ImageCachePolicy");

const ID_PREFIX = "imagecache:";

/** The id of the policy of a cluster's cache. */
function idOf(clusterName: string, cachePrefix: string): string {
  return `${ID_PREFIX}${clusterName}:${cachePrefix}`;
}

/** clusterName and cachePrefix from an id (a prefix never holds ':', a cluster name may). */
function parseId(id: string): { clusterName: string; cachePrefix: string } | undefined {
  if (!id.startsWith(ID_PREFIX)) return undefined;
  const rest = id.slice(ID_PREFIX.length);
  const cut = rest.lastIndexOf(":");
  if (cut <= 0) return undefined;
  return { clusterName: rest.slice(0, cut), cachePrefix: rest.slice(cut + 1) };
}

// The cluster's datastores as check read them, for the create or update that follows in
// the same process (the engine starts one process per operation, so never for long).
const datastoreLists = new WeakMap<VimClient, Map<string, Promise<Datastore[]>>>();

function datastoresOf(client: VimClient, cluster: Cluster): Promise<Datastore[]> {
  let perClient = datastoreLists.get(client);
  if (!perClient) datastoreLists.set(client, (perClient = new Map()));
  const key = cluster.ref.toString();
  let found = perClient.get(key);
  if (!found) {
    const map = perClient;
    found = getDatastores(client, cluster.datastores);
    map.set(key, found);
    found.catch(() => map.delete(key));
  }
  return found;
}

/** The datastores a sweep looks at (datastore-select.ts sweepDatastores). One property-collector call. */
async function sweepTargets(client: VimClient, cluster: Cluster, r: Pick<Resolved, "datastores" | "datastoreRegex">): Promise<string[]> {
  return sweepDatastores(cluster.name, await datastoresOf(client, cluster), r);
}

/** The input a failed look-up is blamed on. */
function failureOf(err: unknown, r: Record<string, unknown>): pulumi.dynamic.CheckFailure | undefined {
  if (!(err instanceof NotFoundError)) return undefined;
  if (err.kind === "datastore" && r.datastores !== undefined) return { property: "datastores", reason: err.message };
  if (err.kind === "datastore" && r.datastoreRegex !== undefined) return { property: "datastoreRegex", reason: err.message };
  return { property: "clusterName", reason: err.message };
}

/** One sweep with these inputs, and the state that records it. */
async function sweep(ctx: HandlerContext, r: Resolved): Promise<ImageCachePolicyState> {
  const client = await ctx.client();
  const cluster = await clusterOf(ctx, client, r.clusterName);
  const targets = await sweepTargets(client, cluster, r);
  const result = await sweepCache(client, {
    datacenter: cluster.datacenter,
    datastores: targets,
    cachePrefix: r.cachePrefix,
    removeUnused: r.removeUnusedBaseImages,
    minAgeSeconds: r.removeUnusedOriginalMinimumAgeSeconds,
    stagingGraceSeconds: r.stagingGraceSeconds,
    dryRun: r.dryRun,
  });
  // The resource does not fail for them (the sweep went on with the rest); the report keeps them, and stderr tells the operator.
  for (const d of result.datastores) for (const e of d.errors) process.stderr.write(`warning: ImageCachePolicy ${r.clusterName}/${r.cachePrefix}_base on ${d.datastore}: ${e}\n`);
  const resolved = Object.fromEntries([...INPUT_KEYS, ...COMPUTED_INPUT_KEYS].filter((k) => r[k] !== undefined).map((k) => [k, r[k]])) as unknown as Resolved;
  return { ...resolved, datacenter: cluster.datacenter.name, sweptDatastores: targets, ...reportOf(result, r.removeUnusedOriginalMinimumAgeSeconds) };
}

export const imageCachePolicyHandler: ResourceHandler = {
  async check(ctx, olds, news) {
    const props = stripProvider(news);
    // Output-only properties arrive as undefined (the class passes them so they become outputs); computed ones are check's.
    for (const k of OUTPUT_KEYS) if (props[k] === undefined || props[k] === null || (COMPUTED_INPUT_KEYS as readonly string[]).includes(k)) delete props[k];
    const misspelt = unknownInputFailures(props, INPUT_KEYS, "ImageCachePolicy");
    if (misspelt.length) return { inputs: props, failures: misspelt };
    // Unknowns (outputs of resources not made yet, at preview) stay unknown: no default over them, nothing checked that needs them.
    const unknown = Object.keys(props).filter((k) => isUnknown(props[k]) || (Array.isArray(props[k]) && (props[k] as unknown[]).some(isUnknown)));
    const known = Object.fromEntries(Object.entries(props).filter(([k]) => !unknown.includes(k)));
    const mask = Object.fromEntries(unknown.filter((k) => k in InputsSchema.shape).map((k) => [k, true])) as Partial<Record<keyof typeof InputsSchema.shape, true>>;
    const parsed = InputsSchema.omit(mask).safeParse(known);
    if (!parsed.success) return { inputs: props, failures: checkFailures(parsed.error, known, "ImageCachePolicy") };
    const inputs: Record<string, unknown> = { ...parsed.data };
    for (const k of unknown) inputs[k] = UNKNOWN;

    const failures: pulumi.dynamic.CheckFailure[] = [];
    if (props.datastores !== undefined && props.datastoreRegex !== undefined) {
      failures.push({ property: "datastoreRegex", reason: "give datastores (names) or datastoreRegex, not both: the names are the datastores swept" });
    }
    const cfg = ctx.config();
    if (inputs.cachePrefix === undefined) inputs.cachePrefix = cfg.cachePrefix ?? "";
    if (inputs.removeUnusedBaseImages === undefined) inputs.removeUnusedBaseImages = cfg.removeUnusedBaseImages;
    if (inputs.removeUnusedOriginalMinimumAgeSeconds === undefined) inputs.removeUnusedOriginalMinimumAgeSeconds = cfg.removeUnusedOriginalMinimumAgeSeconds;
    if (inputs.datastores === undefined && inputs.datastoreRegex === undefined && cfg.datastoreRegex !== undefined) inputs.datastoreRegex = cfg.datastoreRegex;
    if (inputs.clusterName === undefined) inputs.clusterName = cfg.clusterName;
    if (inputs.clusterName === undefined) failures.push({ property: "clusterName", reason: "no cluster: set clusterName, or the vmware:clusterName config" });
    if (failures.length) return { inputs, failures };

    // The cluster and its datastores, looked up only when they may have changed, so a
    // no-change preview stays free of vCenter calls.
    const o = stripProvider(olds);
    const where = ["clusterName", "datastores", "datastoreRegex"];
    const moved = Object.keys(o).length === 0 || changedInputs(o, inputs).some((k) => where.includes(k));
    if (moved && !where.some((k) => unknown.includes(k))) {
      try {
        const client = await ctx.client();
        await sweepTargets(client, await clusterOf(ctx, client, inputs.clusterName as string), inputs as Pick<Resolved, "datastores" | "datastoreRegex">);
      } catch (err) {
        const failure = failureOf(err, inputs);
        if (!failure) throw err;
        return { inputs, failures: [failure] };
      }
    }

    // Whether this up sweeps, and why: check runs at preview too, so the preview shows the reason.
    if (unknown.length) {
      inputs.sweepDue = UNKNOWN;
      inputs.sweepRequestedAt = UNKNOWN;
    } else {
      const s = schedule(o, inputs, new Date());
      inputs.sweepDue = s.sweepDue;
      inputs.sweepRequestedAt = s.sweepRequestedAt;
    }
    return { inputs };
  },

  async diff(_ctx, _id, olds, news) {
    const o = stripProvider(olds);
    const n = stripProvider(news);
    const unknowns = INPUT_KEYS.filter((k) => isUnknown(n[k]));
    const replaces = REPLACE_KEYS.filter((k) => !isUnknown(n[k]) && n[k] !== o[k]);
    const entries: DetailEntry[] = changedInputs(o, n)
      .filter((k) => !isUnknown(n[k]))
      .map((k) => ({ path: k, kind: changeKind(o[k], n[k]) }));
    // A sweep asked for by check (the interval passed, or the inputs changed): sweepDue says why.
    if (typeof n.sweepRequestedAt === "string" && !isUnknown(n.sweepRequestedAt) && n.sweepRequestedAt !== o.sweepRequestedAt) {
      entries.push({ path: "sweepDue", kind: changeKind(o.sweepDue, n.sweepDue) }, { path: "lastSweep", kind: "UPDATE", inputDiff: false });
    }
    if (replaces.length) return withDetail({ changes: true, replaces: [...replaces], deleteBeforeReplace: false }, entries);
    // Unknown inputs and nothing else known to change: the engine compares old and new inputs itself.
    if (entries.length === 0 && (unknowns.length || isUnknown(n.sweepRequestedAt))) return { replaces: [] };
    return withDetail({ changes: entries.length > 0, replaces: [] }, entries);
  },

  async create(ctx, inputs) {
    const r = stripProvider(inputs) as unknown as Resolved;
    const outs = await sweep(ctx, r);
    return { id: idOf(outs.clusterName, outs.cachePrefix), outs: outs as unknown as Record<string, unknown> };
  },

  async read(_ctx, id, props) {
    const s = stripProvider(props);
    if (Object.keys(s).length > 0) return { id, props: s };
    // From the id alone (import): the policy's cache; the next up sweeps (no sweep recorded).
    const parsed = parseId(id);
    if (!parsed) throw new Error(`ImageCachePolicy id ${JSON.stringify(id)} is not ${ID_PREFIX}<clusterName>:<cachePrefix>`);
    return { id, props: { ...parsed }, inputs: { ...parsed } };
  },

  async update(ctx, _id, _olds, news) {
    const r = stripProvider(news) as unknown as Resolved;
    return { outs: (await sweep(ctx, r)) as unknown as Record<string, unknown> };
  },

  async delete() {
    // The policy only: cached images, their markers and the VMs that use them stay as they are.
  },
};
