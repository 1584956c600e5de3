// The layering rules of ARCHITECTURE.md that a grep can check.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(__dirname, "..");

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith(".ts") ? [p] : [];
  });
}

const importsOf = (file: string) => [...readFileSync(file, "utf8").matchAll(/(?:from|import|require)\s*\(?\s*["']([^"']+)["']/g)].map((m) => m[1]!);

describe("layering", () => {
  it("keeps the driver core free of Pulumi and of the resources above it", () => {
    const files = sources(join(ROOT, "provider", "vsphere"));
    expect(files.length).toBeGreaterThan(5);
    const offenders = files.flatMap((f) =>
      importsOf(f)
        .filter((i) => i.startsWith("@pulumi") || i.includes("/resources/") || i.endsWith("/config.js") || i.startsWith("../../"))
        .map((i) => `${relative(ROOT, f)} imports ${i}`),
    );
    expect(offenders).toEqual([]);
  });

  it("keeps test helpers out of the shipped package", () => {
    const offenders = sources(join(ROOT, "provider")).flatMap((f) =>
      importsOf(f).filter((i) => i.includes("/test/") || i.includes("vitest")).map((i) => `${relative(ROOT, f)} imports ${i}`),
    );
    expect(offenders).toEqual([]);
  });
});
