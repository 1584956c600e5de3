import { defineConfig } from "tsup";

// The package is consumed by Pulumi programs (CommonJS under ts-node, or ESM), so
// both formats ship, with declarations. Dependencies stay external: the dynamic
// provider host must load the very same @pulumi/pulumi the program does.
export default defineConfig({
  entry: {
    index: "provider/index.ts",
    "vsphere/index": "provider/vsphere/index.ts",
    handler: "provider/handler.ts",
    // The command line (package.json "bin": dist/cli.js, the CommonJS build, keeps the shebang).
    cli: "provider/cli.ts",
  },
  format: ["cjs", "esm"],
  dts: true,
  sourcemap: true,
  clean: true,
  target: "node20",
  outDir: "dist",
  skipNodeModulesBundle: true,
});
