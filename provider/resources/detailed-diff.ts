// Detailed diffs: which property changes and whether it forces a replacement, as the
// engine's DiffResponse carries them (`detailedDiff`, `diffs`, `hasDetailedDiff`), so a
// preview shows them.
//
// The stock dynamic-provider host (@pulumi/pulumi/cmd/dynamic-provider/index.js) copies
// only `changes`, `replaces` and `deleteBeforeReplace` of a provider's DiffResult into
// the DiffResponse. Its diff() ends with
//
//     if (result.replaces && result.replaces.length !== 0) resp.setReplacesList(result.replaces);
//
// so `replaces` is the one value that reaches the response object untouched. `forEngine`
// hands the host, in place of `replaces`, a marker array: the real replace keys, or the
// single SENTINEL when there are none, with the detailed diff under a hidden symbol. The
// host's DiffResponse class has its setReplacesList patched (here, in the host's own
// process) to take the marker apart: the real replaces list, `diffs`, the detailedDiff
// map and hasDetailedDiff. handler.ts's handle() calls forEngine on every diff: the one
// way in for every provider object, those serialised in old states too, so the
// serialised text of provider.ts stays as it is.
//
// Why this is sound:
// - A marker is only ever made in a process whose DiffResponse class carries the patch:
//   forEngine checks the flag on the very prototype it patched, at each call. The
//   handler runs inside the host (the provider object `require`s it there), so the check
//   and the host's setReplacesList call are in the same process, on the same class.
// - That class is the host's own: the process's main module must be the host's
//   index.js, and the proto module is taken from the module cache at the path the host
//   required ("../../proto/provider_pb" resolved from require.main's file), loaded by the
//   host at its start. A fresh copy is never loaded: no entry in the cache, no patch.
// - The host's source must still pass `result.replaces` itself to setReplacesList when
//   it is non-empty (checked once, on the text of require.main's file); a host that
//   does anything else gets plain diffs, so a SENTINEL can never become a replace key.
// - With real replace keys the marker's elements are those keys, so even a lost hidden
//   payload leaves the engine's replacement decision intact; the patched setter also
//   drops a bare SENTINEL from any list it is given.
// - Elsewhere (a program, a test calling handlers in-process, an ESM load) nothing is
//   patched and forEngine returns the handler's plain result: no SENTINEL, ever.
// - Two copies of this package in one host (two versions) share the patch through
//   Symbol.for keys; the payload's shape is versioned in the key (v1).
//
// The engine (pulumi sdk/go/common/resource/plugin: DiffResult.Replace) replaces a
// resource when any detailed kind is a *_REPLACE, as well as on replace keys, so a
// detailed diff must agree with `replaces`: withDetail derives each kind's replace
// suffix from `replaces`, never the other way round.
import type * as pulumi from "@pulumi/pulumi";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { DetailedDiffResult, PropertyDiffKind } from "./handler-types.js";

/** One changed property: its path ("cpus", "networks[1].model", `hostVlans["esx-1.lab"]`). */
export interface DetailEntry {
  path: string;
  kind: PropertyDiffKind;
  /** true (the default): the new input against the old input; false: against the old state (drift, config). */
  inputDiff?: boolean;
}

/** Stands in for "no replace keys" in a marker; never a property name (not a valid input key). */
export const SENTINEL = "__pulumi-vmware-vcenter/detailedDiff__";

const ENCODED = Symbol.for("pulumi-vmware-vcenter.detailedDiff.v1");
const PATCHED = Symbol.for("pulumi-vmware-vcenter.detailedDiff.v1.patched");

interface Payload {
  replaces: string[];
  diffs: string[];
  detailedDiff: Record<string, { kind: PropertyDiffKind; inputDiff: boolean }>;
}

/** The top-level property of a path: "networks" of "networks[1].model". */
export function topKey(path: string): string {
  const m = /^[^.[]+/.exec(path);
  return m ? m[0] : path;
}

/** A property path in the engine's syntax: `propertyPath("networks", 1, "model")` = "networks[1].model". */
export function propertyPath(first: string, ...rest: Array<string | number>): string {
  return rest.reduce<string>((p, s) => (typeof s === "number" ? `${p}[${s}]` : /^[A-Za-z_$][\w$]*$/.test(s) ? `${p}.${s}` : `${p}[${JSON.stringify(s)}]`), first);
}

/** ADD, DELETE or UPDATE for a value going from `before` to `after` (undefined: absent). */
export function changeKind(before: unknown, after: unknown): "ADD" | "DELETE" | "UPDATE" {
  if (before === undefined && after !== undefined) return "ADD";
  if (before !== undefined && after === undefined) return "DELETE";
  return "UPDATE";
}

const baseKind = (k: PropertyDiffKind) => k.replace(/_REPLACE$/, "") as "ADD" | "DELETE" | "UPDATE";

/**
 * `result` with the detailed diff of `entries`. The result decides: a kind is a
 * *_REPLACE exactly when its top-level property is in `replaces` (a replace key with no
 * entry gets an UPDATE_REPLACE of its own), and a result that is not a change
 * (`changes` false or unknown) carries no detail. A path given twice keeps the first.
 */
export function withDetail(result: pulumi.dynamic.DiffResult, entries: readonly DetailEntry[]): DetailedDiffResult {
  const { detailedDiff: _dropped, ...plain } = result as DetailedDiffResult;
  if (result.changes !== true) return plain;
  const replaces = new Set(result.replaces ?? []);
  const detail: Record<string, { kind: PropertyDiffKind; inputDiff: boolean }> = {};
  for (const e of entries) {
    if (e.path in detail) continue;
    const base = baseKind(e.kind);
    detail[e.path] = { kind: replaces.has(topKey(e.path)) ? `${base}_REPLACE` : base, inputDiff: e.inputDiff ?? true };
  }
  for (const k of replaces) {
    if (!Object.keys(detail).some((p) => topKey(p) === k)) detail[k] = { kind: "UPDATE_REPLACE", inputDiff: true };
  }
  return Object.keys(detail).length ? { ...plain, detailedDiff: detail } : plain;
}

/**
 * What the handler module gives the host for a diff: in the host process with the patch
 * in place, `replaces` is a marker carrying the detailed diff; anywhere else, `result`
 * as it is.
 */
export function forEngine(result: DetailedDiffResult): DetailedDiffResult {
  const detail = result.detailedDiff;
  if (result.changes !== true || !detail || Object.keys(detail).length === 0 || !patched()) return result;
  const replaces = [...(result.replaces ?? [])];
  const payload: Payload = {
    replaces,
    diffs: [...new Set(Object.keys(detail).map(topKey))],
    detailedDiff: Object.fromEntries(Object.entries(detail).map(([p, d]) => [p, { kind: d.kind, inputDiff: d.inputDiff ?? true }])),
  };
  const marker = replaces.length ? [...replaces] : [SENTINEL];
  Object.defineProperty(marker, ENCODED, { value: payload, enumerable: false });
  const { detailedDiff: _carried, ...rest } = result;
  return { ...rest, replaces: marker };
}

// --- The host side -----------------------------------------------------------------

interface PropertyDiffMessage {
  setKind(kind: number): unknown;
  setInputdiff(inputDiff: boolean): unknown;
}

interface DiffResponseMessage {
  setReplacesList(value: unknown): unknown;
  setDiffsList(value: string[]): unknown;
  getDetaileddiffMap(): { set(key: string, value: PropertyDiffMessage): unknown };
  setHasdetaileddiff(value: boolean): unknown;
}

type Setter = ((this: DiffResponseMessage, value: unknown) => unknown) & { [PATCHED]?: true };

interface ProviderProto {
  DiffResponse: { prototype: DiffResponseMessage };
  PropertyDiff: { new (): PropertyDiffMessage; Kind: Record<PropertyDiffKind, number> };
}

/** The host's entry, as the engine starts it (`node .../cmd/dynamic-provider/index.js`). */
const HOST_ENTRY = /[\\/]@pulumi[\\/]pulumi[\\/]cmd[\\/]dynamic-provider[\\/]index\.js$/;
/** The host's own hand-over of `replaces`, unchanged, when non-empty (see the top of this file). */
const HOST_HANDOVER = /if \(result\.replaces && result\.replaces\.length !== 0\) \{\s*resp\.setReplacesList\(result\.replaces\);\s*\}/;

let hostProto: ProviderProto | null | undefined;

/** The host's provider_pb module, or null when this process is not the host (or a host this does not know). */
export function findHostProto(): ProviderProto | null {
  if (hostProto !== undefined) return hostProto;
  hostProto = null;
  try {
    // Not in an ESM load (no `require`): the host loads the handler with require, so that is never the host.
    if (typeof require !== "function") return null;
    const main = require.main;
    if (!main || !HOST_ENTRY.test(main.filename)) return null;
    if (!HOST_HANDOVER.test(readFileSync(main.filename, "utf8"))) return null;
    const loaded = require.cache[createRequire(main.filename).resolve("../../proto/provider_pb")];
    const proto = loaded?.exports as Partial<ProviderProto> | undefined;
    const kinds = proto?.PropertyDiff?.Kind;
    const dr = proto?.DiffResponse?.prototype;
    if (!proto || !kinds || !dr || typeof proto.PropertyDiff !== "function") return null;
    if (!["setReplacesList", "setDiffsList", "getDetaileddiffMap", "setHasdetaileddiff"].every((m) => typeof (dr as unknown as Record<string, unknown>)[m] === "function")) return null;
    if (!(["ADD", "ADD_REPLACE", "DELETE", "DELETE_REPLACE", "UPDATE", "UPDATE_REPLACE"] as const).every((k) => typeof kinds[k] === "number")) return null;
    hostProto = proto as ProviderProto;
  } catch {
    hostProto = null;
  }
  return hostProto;
}

/** Patches the host's DiffResponse once; says whether the patch is in place now. */
function patched(): boolean {
  const proto = findHostProto();
  if (!proto) return false;
  const dr = proto.DiffResponse.prototype;
  if ((dr.setReplacesList as Setter)[PATCHED]) return true;
  const original = dr.setReplacesList as Setter;
  const setter: Setter = function (this: DiffResponseMessage, value: unknown) {
    const payload = (value as { [ENCODED]?: Payload } | null | undefined)?.[ENCODED];
    if (!payload) return original.call(this, Array.isArray(value) ? value.filter((v) => v !== SENTINEL) : value);
    original.call(this, payload.replaces);
    this.setDiffsList(payload.diffs);
    const map = this.getDetaileddiffMap();
    for (const [path, d] of Object.entries(payload.detailedDiff)) {
      const pd = new proto.PropertyDiff();
      pd.setKind(proto.PropertyDiff.Kind[d.kind]);
      pd.setInputdiff(d.inputDiff);
      map.set(path, pd);
    }
    this.setHasdetaileddiff(true);
    return this;
  };
  setter[PATCHED] = true;
  dr.setReplacesList = setter;
  return true;
}
