// Turning zod issues into Pulumi check failures that name the property, the value
// and what is accepted; unknown input names with the closest valid one.
import type * as pulumi from "@pulumi/pulumi";
import type { z } from "zod";
import { levenshtein } from "../vsphere/edit-distance.js";

export function stripProvider(props: Record<string, unknown>): Record<string, unknown> {
  const { __provider: _ignored, ...rest } = props;
  return rest;
}

/** Levenshtein distance, case-insensitive (a misspelling is often only the case: "vlanid"). */
export function editDistance(a: string, b: string): number {
  return levenshtein(a.toLowerCase(), b.toLowerCase());
}

/** The valid name closest to a misspelt one, if it is close enough to be a likely typo. */
export function closest(name: string, valid: readonly string[]): string | undefined {
  let best: { name: string; d: number } | undefined;
  for (const v of valid) {
    const d = editDistance(name, v);
    if (!best || d < best.d) best = { name: v, d };
  }
  return best && best.d <= Math.max(2, Math.floor(best.name.length / 3)) ? best.name : undefined;
}

/** One failure per input name the resource does not have, suggesting the closest valid name. */
export function unknownInputFailures(values: Record<string, unknown>, valid: readonly string[], resource: string): pulumi.dynamic.CheckFailure[] {
  return Object.keys(values)
    .filter((k) => !valid.includes(k))
    .map((k) => {
      const guess = closest(k, valid);
      return {
        property: k,
        reason: `${resource} has no input "${k}"${guess ? `; did you mean "${guess}"?` : ""} (inputs: ${valid.join(", ")})`,
      };
    });
}

export function checkFailures(error: z.ZodError, values: Record<string, unknown>, resource: string): pulumi.dynamic.CheckFailure[] {
  return error.issues.map((issue) => {
    const property = issue.path.map(String).join(".") || "(inputs)";
    const key = issue.path[0];
    const value = key === undefined ? undefined : values[String(key)];
    let accepted = issue.message.replace(/^Invalid input: /, "");
    if (issue.code === "invalid_value") accepted = `one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    if (issue.code === "unrecognized_keys") {
      return { property: issue.keys.join(", "), reason: `${resource} has no input ${issue.keys.map((k) => `"${k}"`).join(", ")}` };
    }
    return { property, reason: `${resource}.${property} = ${JSON.stringify(value)}: want ${accepted}` };
  });
}

/** A check's failures thrown as one error: create and update re-check what check could not (e.g. inputs unknown then). */
export function throwFailures(failures: pulumi.dynamic.CheckFailure[]): void {
  if (failures.length) throw new Error(failures.map((f) => `${f.property}: ${f.reason}`).join("; "));
}
