// Turning zod issues into Pulumi check failures that name the property, the value
// and what is accepted.
import type * as pulumi from "@pulumi/pulumi";
import type { z } from "zod";

export function stripProvider(props: Record<string, unknown>): Record<string, unknown> {
  const { __provider: _ignored, ...rest } = props;
  return rest;
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
