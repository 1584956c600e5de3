// An ESM Pulumi program's PortGroup: its serialized provider (from the package's
// ESM build) must load the handler in a CommonJS provider process and work.
import * as pulumi from "@pulumi/pulumi";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const requireFromString = require("require-from-string"); // what the dynamic-provider host uses

let provider;
await pulumi.runtime.setMocks(
  {
    call: () => ({}),
    newResource: (a) => {
      provider = a.inputs.__provider;
      return { id: "x", state: a.inputs };
    },
  },
  "p",
  "s",
  false,
);
const { PortGroup } = await import("pulumi-vmware-vcenter");
new PortGroup("esm", { name: "x" });
for (let i = 0; i < 100 && !provider; i++) await new Promise((r) => setTimeout(r, 20));
const p = requireFromString(provider).handler();
await p.configure({ config: { get: () => undefined } });
const checked = await p.check({}, { name: "x", vlanId: 9000 });
process.stdout.write(JSON.stringify({ failures: checked.failures, serialized: provider }) + "\n");
