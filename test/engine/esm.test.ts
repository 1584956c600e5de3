// The provider object serialised from the package's ESM build works in the
// (CommonJS) dynamic-provider process, as the one from the CommonJS build does.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "../vcsim/build.mjs";

describe("ESM programs", () => {
  it("serialise a provider that loads the handler and checks input", () => {
    const out = execFileSync(process.execPath, [join(PROJECT_ROOT, "test", "engine", "programs", "esm-provider.mjs")], { cwd: PROJECT_ROOT, encoding: "utf8" });
    const result = JSON.parse(out.trim().split("\n").at(-1)!) as { failures: unknown[]; serialized: string };
    expect(result.failures).toEqual([{ property: "vlanId", reason: "PortGroup.vlanId = 9000: want 0 to 4094" }]);
    expect(result.serialized).not.toContain("__require");
    expect(result.serialized).toContain(`eval("require")`);
  });
});
