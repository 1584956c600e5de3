// Which datastore of a cluster gets an image or a VM: the one selection Image and
// Instance share, as Nova's ds_util (and better: it refuses when nothing fits, and
// says for each candidate why not).
//
// A candidate is accessible, not in (or entering) maintenance, of type VMFS, NFS or
// NFS41 (vsan only when asked for, as Nova for streamOptimized images), mounted and
// accessible on every host of the cluster (a host-local datastore never is), and
// named as `datastoreRegex` says, anchored at the start as Python's re.match. The
// one with the most free space wins; ties go to the first name in sort order, so
// the choice does not depend on the order vCenter lists them.
import { z } from "zod";
import type { VimClient } from "./client.js";
import { NoSuitableDatastoreError, NotFoundError, type DatastoreRejection } from "./errors.js";
import { DatastoreProps, toDatastore, type Cluster, type Datastore } from "./inventory.js";
import { noteDatastores } from "./datastore.js";
import { PropertyCollector, type Alongside, type RawObjectContent } from "./property.js";
import { pathsOf, str } from "./schema.js";
import type { MoRef } from "./soap/xml.js";

/** Datastore types vSphere can put a VM's disks on, as Nova lists them. */
export const DATASTORE_TYPES = ["VMFS", "NFS", "NFS41"] as const;

export interface SelectOptions {
  /** `vmware:datastoreRegex`: matched from the start of the name (re.match), not the end. */
  datastoreRegex?: RegExp | string | undefined;
  /** Bytes the image or disk needs: a datastore with less free space is refused. */
  requiredBytes?: number | undefined;
  /** Also accept vSAN datastores (Nova does for streamOptimized images). */
  allowVsan?: boolean | undefined;
  /**
   * Reads of other objects to make in the same round trip as the datastores' (e.g. every
   * VM's VNC port before a create); `reads` is filled with what they returned.
   */
  alongside?: Alongside | undefined;
}

export interface HostName {
  ref: MoRef;
  name: string;
}

export interface Selection {
  datastore: Datastore;
  /** Every datastore that fits, best first (the chosen one first). */
  candidates: Datastore[];
  /** The candidates that lost, and why (fit but had less free space: "less free space than X"). */
  rejected: DatastoreRejection[];
}

/** The regex as re.match uses it: sticky, so it must match at index 0. */
export function anchoredRegex(regex: RegExp | string): RegExp {
  const src = typeof regex === "string" ? regex : regex.source;
  const flags = typeof regex === "string" ? "" : regex.flags.replace(/[gy]/g, "");
  return new RegExp(src, `${flags}y`);
}

function matchesAtStart(re: RegExp, name: string): boolean {
  re.lastIndex = 0;
  return re.test(name);
}

const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;

/** Why a datastore cannot be used (empty: it can). Pure. */
export function rejectionReasons(ds: Datastore, hosts: HostName[], opts: SelectOptions): string[] {
  const reasons: string[] = [];
  if (opts.datastoreRegex !== undefined && !matchesAtStart(anchoredRegex(opts.datastoreRegex), ds.name)) {
    reasons.push(`name does not match datastoreRegex ${String(opts.datastoreRegex)}`);
  }
  const types: readonly string[] = opts.allowVsan ? [...DATASTORE_TYPES, "vsan"] : DATASTORE_TYPES;
  if (!types.includes(ds.type)) reasons.push(`type ${ds.type} is not one of ${types.join(", ")}`);
  if (!ds.accessible) reasons.push("not accessible");
  if (ds.maintenanceMode !== undefined && ds.maintenanceMode !== "normal") reasons.push(`maintenance mode ${ds.maintenanceMode}`);
  const mounted = new Set(ds.hosts.map((h) => h.toString()));
  const missing = hosts.filter((h) => !mounted.has(h.ref.toString()));
  if (missing.length) reasons.push(`not mounted and accessible on host${missing.length > 1 ? "s" : ""} ${missing.map((h) => h.name).join(", ")}`);
  if (opts.requiredBytes !== undefined && ds.freeSpace < opts.requiredBytes) {
    reasons.push(`free space ${gib(ds.freeSpace)} < required ${gib(opts.requiredBytes)}`);
  }
  return reasons;
}

/**
 * Picks the datastore for a cluster whose hosts are `hosts` (all of them: a datastore
 * must be on every one). Pure; throws NoSuitableDatastoreError listing every
 * candidate and why when none fits.
 */
export function chooseDatastore(clusterName: string, datastores: Datastore[], hosts: HostName[], opts: SelectOptions = {}): Selection {
  const rejected: DatastoreRejection[] = [];
  const fit: Datastore[] = [];
  for (const ds of datastores) {
    const reasons = rejectionReasons(ds, hosts, opts);
    if (reasons.length) rejected.push({ name: ds.name, reasons });
    else fit.push(ds);
  }
  fit.sort((a, b) => b.freeSpace - a.freeSpace || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const [best, ...rest] = fit;
  if (!best) throw new NoSuitableDatastoreError(clusterName, rejected, opts.requiredBytes);
  for (const ds of rest) rejected.push({ name: ds.name, reasons: [`less free space (${gib(ds.freeSpace)}) than ${best.name} (${gib(best.freeSpace)})`] });
  return { datastore: best, candidates: fit, rejected };
}

/** Which datastores a cache sweep looks at: these names, or the regex's matches, or (neither) all. */
export interface SweepChoice {
  /** By name: each must be one of the cluster's (accessible or not: the sweep reports its error). */
  datastores?: string[] | undefined;
  /** The cluster's accessible datastores whose name this matches from the start (re.match). */
  datastoreRegex?: string | undefined;
}

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The datastores a cache sweep (the ImageCachePolicy resource and the `cache`
 * command line alike) looks at, from the cluster's `datastores`: the names given
 * (each must be the cluster's), else the accessible ones `datastoreRegex` matches from
 * the start, else every accessible one; sorted by name (code units, so the order does
 * not depend on the locale). Pure; throws NotFoundError (kind "datastore") when a
 * name is not the cluster's or nothing is left, listing the cluster's datastores.
 */
export function sweepDatastores(clusterName: string, datastores: Datastore[], choice: SweepChoice = {}): string[] {
  const names = datastores.map((d) => d.name).sort(byName);
  const listed = `(its datastores: ${names.join(", ") || "none"})`;
  if (choice.datastores) {
    const unknown = choice.datastores.filter((n) => !names.includes(n));
    if (unknown.length) {
      const which = unknown.map((n) => JSON.stringify(n)).join(", ");
      throw new NotFoundError(`datastore${unknown.length > 1 ? "s" : ""} ${which} not in cluster ${clusterName} ${listed}`, "datastore", unknown[0]);
    }
    return [...choice.datastores];
  }
  const re = choice.datastoreRegex !== undefined ? anchoredRegex(choice.datastoreRegex) : undefined;
  const picked = datastores.filter((d) => d.accessible && (!re || matchesAtStart(re, d.name))).map((d) => d.name);
  if (picked.length === 0) {
    const why = re ? `datastoreRegex ${JSON.stringify(choice.datastoreRegex)} matches none of cluster ${clusterName}'s accessible datastores` : `cluster ${clusterName} has no accessible datastore`;
    throw new NotFoundError(`${why} ${listed}`, "datastore", choice.datastoreRegex);
  }
  return picked.sort(byName);
}

const HostProps = z.object({ name: str });

/**
 * Reads the cluster's datastores and its hosts' names in one property-collector
 * call, then chooses (see chooseDatastore).
 */
export async function selectDatastore(client: VimClient, cluster: Cluster, opts: SelectOptions = {}): Promise<Selection> {
  const objs = [...cluster.datastores, ...cluster.hosts];
  const extra = opts.alongside?.specs ?? [];
  const contents =
    objs.length || extra.length
      ? await new PropertyCollector(client).retrieve([
          ...(objs.length
            ? [
                {
                  propSet: [
                    { type: "Datastore", pathSet: pathsOf(DatastoreProps) },
                    { type: "HostSystem", pathSet: ["name"] },
                  ],
                  objectSet: objs.map((obj) => ({ obj })),
                  reportMissingObjectsInResults: true,
                },
              ]
            : []),
          ...extra,
        ])
      : [];
  const mine = new Set(objs.map((o) => o.toString()));
  const datastores: Datastore[] = [];
  const hostNames = new Map<string, string>();
  const others: RawObjectContent[] = [];
  for (const c of contents) {
    if (!mine.has(c.obj.toString())) {
      others.push(c);
      continue;
    }
    if (c.missing.length) continue; // deleted since the cluster was read
    if (c.obj.type === "HostSystem") hostNames.set(c.obj.toString(), HostProps.parse(c.props).name);
    if (c.obj.type !== "Datastore") continue;
    datastores.push(toDatastore(c.obj, DatastoreProps.parse(c.props)));
  }
  if (opts.alongside) opts.alongside.reads = others;
  // Their browsers came with them: a search of one of them needs no read of its own.
  noteDatastores(
    client,
    cluster.datacenter,
    datastores.flatMap((d) => (d.browser ? [{ ref: d.ref, name: d.name, browser: d.browser }] : [])),
  );
  const hosts = cluster.hosts.map((ref) => ({ ref, name: hostNames.get(ref.toString()) ?? ref.value }));
  return chooseDatastore(cluster.name, datastores, hosts, opts);
}
