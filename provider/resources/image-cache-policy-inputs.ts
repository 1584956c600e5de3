// ImageCachePolicy inputs: the Args type users write, the zod schema check validates
// with, when a sweep is due (and the words a preview shows for it), and the report the
// state holds, shaped from the sweeper's. Pure: no vCenter, no Pulumi runtime.
import { isRegex } from "../config.js";
import type * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import type { DatastoreSweep, ImageSweep, SweepReport } from "../vsphere/cache-sweep.js";

export interface ImageCachePolicyArgs {
  /** The cache to tidy: `[ds] <cachePrefix>_base`. Default: `vmware:cachePrefix` (Nova's cache_prefix). */
  cachePrefix?: pulumi.Input<string>;
  /** Remove cached images no VM uses once they are old enough. Default: `vmware:removeUnusedBaseImages` (true), Nova's remove_unused_base_images. */
  removeUnusedBaseImages?: pulumi.Input<boolean>;
  /**
   * Seconds an unused image is kept after it was first seen unused (its age marker).
   * Default: `vmware:removeUnusedOriginalMinimumAgeSeconds` (86400), Nova's
   * remove_unused_original_minimum_age_seconds.
   */
  removeUnusedOriginalMinimumAgeSeconds?: pulumi.Input<number>;
  /** The datastores to sweep, by name (each a datastore of the cluster). Not with datastoreRegex. */
  datastores?: pulumi.Input<pulumi.Input<string>[]>;
  /** Sweep the cluster's datastores whose name this matches (from the start, as Nova's datastore_regex). Default: `vmware:datastoreRegex`, else every datastore of the cluster. */
  datastoreRegex?: pulumi.Input<string>;
  /** The cluster whose datastores are swept. Default: `vmware:clusterName`. */
  clusterName?: pulumi.Input<string>;
  /** A `pulumi up` sweeps again when the last sweep is older than this. Default 3600; 0 sweeps at every up. */
  sweepIntervalSeconds?: pulumi.Input<number>;
  /** Staging (`vmware_temp/<uuid>`) and shadow-VM folders untouched this long are what failed work left: removed. Default 3600. */
  stagingGraceSeconds?: pulumi.Input<number>;
  /** Report what a sweep would do, and do nothing (no marker, no delete). Default false. */
  dryRun?: pulumi.Input<boolean>;
}

export const INPUT_KEYS = [
  "cachePrefix",
  "removeUnusedBaseImages",
  "removeUnusedOriginalMinimumAgeSeconds",
  "datastores",
  "datastoreRegex",
  "clusterName",
  "sweepIntervalSeconds",
  "stagingGraceSeconds",
  "dryRun",
] as const;

/**
 * Inputs check computes (never written by a program): why the next update sweeps, and
 * the time check asked for that sweep. They are how a routine `pulumi up` sweeps again:
 * check sees only the old inputs, so the schedule lives in them.
 */
export const COMPUTED_INPUT_KEYS = ["sweepDue", "sweepRequestedAt"] as const;

export const DEFAULT_INTERVAL_SECONDS = 3600;
export const DEFAULT_GRACE_SECONDS = 3600;

const seconds = (what: string) => z.number().int(`${what} in whole seconds`).min(0, `${what}: 0 or more seconds`);

const regex = z.string().min(1, "a non-empty regular expression").refine(isRegex, { message: "a valid regular expression" });

/** Validated inputs (what the program wrote; defaults from config are filled after). */
export const InputsSchema = z.strictObject({
  cachePrefix: z.string().regex(/^([A-Za-z0-9][A-Za-z0-9._-]{0,99})?$/, "letters, digits, '.', '_' or '-' (a folder name prefix), or empty").optional(),
  removeUnusedBaseImages: z.boolean().optional(),
  removeUnusedOriginalMinimumAgeSeconds: seconds("a minimum age").optional(),
  datastores: z
    .array(z.string().trim().min(1, "a datastore name"))
    .min(1, "at least one datastore name (leave datastores out to sweep the cluster's)")
    .refine((a) => new Set(a).size === a.length, "each datastore once")
    .optional(),
  datastoreRegex: regex.optional(),
  clusterName: z.string().trim().min(1, "a cluster name").optional(),
  sweepIntervalSeconds: seconds("an interval").default(DEFAULT_INTERVAL_SECONDS),
  stagingGraceSeconds: seconds("a grace period").default(DEFAULT_GRACE_SECONDS),
  dryRun: z.boolean().default(false),
});

/** Inputs after check: defaults filled in (all known by create and update). */
export interface Resolved {
  cachePrefix: string;
  removeUnusedBaseImages: boolean;
  removeUnusedOriginalMinimumAgeSeconds: number;
  datastores?: string[];
  datastoreRegex?: string;
  clusterName: string;
  sweepIntervalSeconds: number;
  stagingGraceSeconds: number;
  dryRun: boolean;
  sweepDue: string;
  sweepRequestedAt: string;
}

/** Inputs that say which cache this policy is for: another one is another policy (replaced). */
export const REPLACE_KEYS = ["clusterName", "cachePrefix"] as const;

// ---------------------------------------------------------------------------
// The schedule

/** "45s", "12m 5s", "2h 3m", "3d": a span as a person reads it (the largest unit and the next, when not 0). */
export function span(ms: number): string {
  const units: Array<[string, number]> = [
    ["d", 86400],
    ["h", 3600],
    ["m", 60],
    ["s", 1],
  ];
  let rest = Math.max(0, Math.round(ms / 1000));
  const counts = units.map(([name, size]) => {
    const n = Math.floor(rest / size);
    rest -= n * size;
    return `${n}${name}`;
  });
  const first = counts.findIndex((c) => !c.startsWith("0"));
  if (first < 0) return "0s";
  const next = counts[first + 1];
  return next && !next.startsWith("0") ? `${counts[first]} ${next}` : counts[first]!;
}

const canonical = (v: unknown): string => JSON.stringify(v === undefined || v === null ? null : v);

/** The inputs (of INPUT_KEYS) whose value differs between two sets of resolved inputs. */
export function changedInputs(before: Record<string, unknown>, after: Record<string, unknown>): string[] {
  return INPUT_KEYS.filter((k) => canonical(before[k]) !== canonical(after[k]));
}

export interface Schedule {
  /** Why the next create or update sweeps; the old words when none is due. */
  sweepDue: string;
  /** When check asked for the sweep (ISO); the old time when none is due. */
  sweepRequestedAt: string;
  due: boolean;
}

/**
 * Whether this `pulumi up` sweeps, from the old inputs (the schedule check recorded at
 * the last sweep) and the new resolved inputs. A new policy, changed inputs, no recorded
 * sweep, or one older than the interval: due, with the reason in words and now as the
 * new request time. Otherwise the old schedule, unchanged, so inputs and state agree and
 * the step is a no-op. Pure.
 */
export function schedule(olds: Record<string, unknown>, news: Record<string, unknown>, now: Date): Schedule {
  const at = now.toISOString();
  if (Object.keys(olds).length === 0) return { sweepDue: "a new policy: first sweep", sweepRequestedAt: at, due: true };
  // No schedule in the old inputs (a state read from an id alone): nothing says when it last swept.
  const last = typeof olds.sweepRequestedAt === "string" ? Date.parse(olds.sweepRequestedAt) : NaN;
  if (Number.isNaN(last)) return { sweepDue: "no sweep recorded: sweep now", sweepRequestedAt: at, due: true };
  const changed = changedInputs(olds, news);
  if (changed.length) return { sweepDue: `inputs changed (${changed.join(", ")}): sweep with the new settings`, sweepRequestedAt: at, due: true };
  const interval = typeof news.sweepIntervalSeconds === "number" ? news.sweepIntervalSeconds : DEFAULT_INTERVAL_SECONDS;
  const age = now.getTime() - last;
  if (age >= interval * 1000) {
    return { sweepDue: `last sweep ${span(age)} ago (${olds.sweepRequestedAt as string}), interval ${span(interval * 1000)}: sweep again`, sweepRequestedAt: at, due: true };
  }
  return { sweepDue: typeof olds.sweepDue === "string" ? olds.sweepDue : "", sweepRequestedAt: olds.sweepRequestedAt as string, due: false };
}

// ---------------------------------------------------------------------------
// The report

export interface ImageUse {
  imageId: string;
  bytes: number;
}

/** One datastore's sweep, grouped by what happened to each image. */
export interface DatastoreReport {
  datastore: string;
  /** Used by VMs (templates included): kept, with the VMs that use them. */
  inUse: Array<ImageUse & { users: string[] }>;
  /** Seen unused for the first time: an age marker was made (dry run: would be). */
  marked: Array<ImageUse & { markedAt?: string }>;
  /** Unused and marked earlier, not yet older than the minimum age. */
  aging: Array<ImageUse & { markedAt?: string; removableAfter?: string }>;
  /** Unused longer than the minimum age: deleted whole (sized bases included). */
  removed: ImageUse[];
  /** Dry run: what would have been deleted. */
  wouldRemove: ImageUse[];
  /** Unused and kept, with the reason: held by an Image resource (holders), removeUnusedBaseImages false, being published, or VMs that could not be read. */
  kept: Array<ImageUse & { reason?: string; holders?: string[] }>;
  bytesFreed: number;
  /** `vmware_temp` staging folders failed work left, removed. */
  stagingCleaned: string[];
  /** Shadow-VM folders failed work left, removed. */
  shadowCleaned: string[];
  errors: string[];
}

export interface SweepSummary {
  datastores: number;
  images: number;
  inUse: number;
  marked: number;
  aging: number;
  removed: number;
  wouldRemove: number;
  kept: number;
  bytesFreed: number;
  stagingCleaned: number;
  shadowCleaned: number;
  errors: number;
}

const use = (i: ImageSweep): ImageUse => ({ imageId: i.imageId, bytes: i.bytes });

/** A datastore's sweep as the state holds it. `minAgeSeconds` dates when an aging image may go. */
export function datastoreReport(d: DatastoreSweep, minAgeSeconds: number): DatastoreReport {
  const of = (state: ImageSweep["state"]) => d.images.filter((i) => i.state === state);
  const removableAfter = (markedAt: string | undefined) => {
    const t = markedAt ? Date.parse(markedAt) : NaN;
    return Number.isNaN(t) ? {} : { removableAfter: new Date(t + minAgeSeconds * 1000).toISOString() };
  };
  return {
    datastore: d.datastore,
    inUse: of("in-use").map((i) => ({ ...use(i), users: [...i.users] })),
    marked: of("marked").map((i) => ({ ...use(i), ...(i.markedAt ? { markedAt: i.markedAt } : {}) })),
    aging: of("aging").map((i) => ({ ...use(i), ...(i.markedAt ? { markedAt: i.markedAt } : {}), ...removableAfter(i.markedAt) })),
    removed: of("removed").map(use),
    wouldRemove: of("would-remove").map(use),
    kept: of("kept").map((i) => ({ ...use(i), ...(i.reason ? { reason: i.reason } : {}), ...(i.holders?.length ? { holders: [...i.holders] } : {}) })),
    bytesFreed: d.bytesFreed,
    stagingCleaned: [...d.stagingCleaned],
    shadowCleaned: [...d.shadowCleaned],
    errors: [...d.errors],
  };
}

export function summaryOf(report: DatastoreReport[]): SweepSummary {
  const sum = (f: (d: DatastoreReport) => number) => report.reduce((n, d) => n + f(d), 0);
  return {
    datastores: report.length,
    images: sum((d) => d.inUse.length + d.marked.length + d.aging.length + d.removed.length + d.wouldRemove.length + d.kept.length),
    inUse: sum((d) => d.inUse.length),
    marked: sum((d) => d.marked.length),
    aging: sum((d) => d.aging.length),
    removed: sum((d) => d.removed.length),
    wouldRemove: sum((d) => d.wouldRemove.length),
    kept: sum((d) => d.kept.length),
    bytesFreed: sum((d) => d.bytesFreed),
    stagingCleaned: sum((d) => d.stagingCleaned.length),
    shadowCleaned: sum((d) => d.shadowCleaned.length),
    errors: sum((d) => d.errors.length),
  };
}

/** What the state holds of one sweep. */
export function reportOf(r: SweepReport, minAgeSeconds: number): { lastSweep: string; lastSweepStarted: string; report: DatastoreReport[]; summary: SweepSummary } {
  const report = r.datastores.map((d) => datastoreReport(d, minAgeSeconds));
  return { lastSweep: r.finishedAt, lastSweepStarted: r.startedAt, report, summary: summaryOf(report) };
}
