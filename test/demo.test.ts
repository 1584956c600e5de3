// `npm run demo` (after its bootstrap and build): the quickstart on the embedded simulator.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "./vcsim/build.mjs";

describe("npm run demo", () => {
  it("runs the quickstart: preview, up, no-op up, destroy, showing the port group on every host and the image in the datastore cache", async () => {
    const out = await new Promise<string>((resolve, reject) => {
      execFile(join(PROJECT_ROOT, "node_modules", ".bin", "tsx"), ["scripts/demo.ts"], { cwd: PROJECT_ROOT, timeout: 180_000 }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout),
      );
    });
    const lines = out.split("\n");
    expect(lines[0]).toMatch(/^demo: (the Pulumi CLI is not installed, so the quickstart runs through the engine-protocol harness|the quickstart with the Pulumi CLI)/);
    if (lines[0]!.includes("harness")) {
      expect(out).toMatch(/\$ up\n  2 create\n/);
      expect(out).toMatch(/\$ up \(again: expect no changes\)\n  2 same\n/);
      for (const h of ["DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2"]) expect(out).toContain(`${h}: port group quickstart-net, VLAN 100, on vSwitch0`);
      expect(out).toMatch(/\$ destroy\n  2 delete\n/);
      expect(out).toContain("DC0_C0_H2: (none)");
      expect(out).toMatch(/imageFormat: "VMDK streamOptimized"/);
    }
    // The image: cached under _base/<imageId> (no vmware:cachePrefix) as the flat disk the
    // NFC import made of the streamOptimized VMDK (32 MiB), with this stack's holder marker;
    // no staging left behind; the folder gone after destroy.
    const folder = /\n    (\[LocalDS_\d\] _base\/([0-9a-f]{32})):\n/.exec(out);
    expect(folder, "the cache folder listing").not.toBeNull();
    const [, path, id] = folder!;
    expect(out).toMatch(new RegExp(`\\n      ${id}-flat\\.vmdk +33554432 bytes\\n`));
    expect(out).toMatch(new RegExp(`\\n      ${id}\\.vmdk +\\d+ bytes\\n`));
    expect(out).toMatch(/\n      holder-[0-9a-f-]{36}\.json +\d+ bytes\n/);
    expect(out).toMatch(/\n    \[LocalDS_\d\] vmware_temp: \(empty\)\n/);
    expect(out).toContain(`    ${path}: (gone)`);
    expect(lines.at(-2)).toBe("demo done: simulator stopped");
  });
});
