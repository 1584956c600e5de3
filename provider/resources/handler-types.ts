// What a resource implements for the dynamic-provider process, and what it gets.
import type * as pulumi from "@pulumi/pulumi";
import type { DriverConfig } from "../config.js";
import type { VimClient } from "../vsphere/client.js";

/** Per-process context: the validated stack config and one shared vCenter session. */
export interface HandlerContext {
  config(): DriverConfig;
  client(): Promise<VimClient>;
}

/** How one property changes, as the engine's PropertyDiff.Kind names it. */
export type PropertyDiffKind = "ADD" | "ADD_REPLACE" | "DELETE" | "DELETE_REPLACE" | "UPDATE" | "UPDATE_REPLACE";

/**
 * A diff with the engine's detailedDiff: property path (e.g. "cpus", "networks[1].model")
 * -> kind, and whether the new value is compared with the old inputs (true) or the old
 * outputs. The stock dynamic-provider host passes only changes / replaces /
 * deleteBeforeReplace to the engine; detailed-diff.ts carries the rest.
 */
export interface DetailedDiffResult extends pulumi.dynamic.DiffResult {
  readonly detailedDiff?: Record<string, { kind: PropertyDiffKind; inputDiff?: boolean }>;
}

export interface ResourceHandler {
  check(ctx: HandlerContext, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.CheckResult>;
  diff(ctx: HandlerContext, id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<DetailedDiffResult>;
  create(ctx: HandlerContext, inputs: Record<string, unknown>): Promise<pulumi.dynamic.CreateResult>;
  read(ctx: HandlerContext, id: string, props: Record<string, unknown>): Promise<pulumi.dynamic.ReadResult>;
  update(ctx: HandlerContext, id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<pulumi.dynamic.UpdateResult>;
  delete(ctx: HandlerContext, id: string, props: Record<string, unknown>): Promise<void>;
}

/** The value Pulumi puts in place of an input that is not known yet (during preview). */
export const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

export function isUnknown(v: unknown): boolean {
  return v === UNKNOWN;
}
