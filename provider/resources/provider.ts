// The dynamic provider objects. Pulumi serialises each one, with everything its
// functions capture, into every resource's state (`__provider`) and runs it in the
// engine's dynamic-provider process. So they capture two strings — the resource
// kind and this package's handler module — and `require` the handler at call time:
// the serialised text is small, holds no secret, and stays the same across
// versions of this package (upgrading does not touch every resource).
import type * as pulumi from "@pulumi/pulumi";

/** Resolved from the program's node_modules by the dynamic-provider process. */
export const HANDLER_MODULE = "pulumi-vmware-vcenter/handler";

/**
 * The provider object for one resource kind (e.g. "PortGroup").
 *
 * `eval("require")` rather than `require`: the ESM build would swap a plain
 * `require` for a shim that cannot load modules, and that shim would be what gets
 * serialised. Evaluated in the provider process, it is that module's own require.
 */
export function dynamicProvider(kind: string): pulumi.dynamic.ResourceProvider {
  const handlerModule = HANDLER_MODULE;
  return {
    async configure(req) {
      await eval("require")(handlerModule).configure(req);
    },
    async check(olds, news) {
      return eval("require")(handlerModule).handle(kind, "check", olds, news);
    },
    async diff(id, olds, news) {
      return eval("require")(handlerModule).handle(kind, "diff", id, olds, news);
    },
    async create(inputs) {
      return eval("require")(handlerModule).handle(kind, "create", inputs);
    },
    async read(id, props) {
      return eval("require")(handlerModule).handle(kind, "read", id, props);
    },
    async update(id, olds, news) {
      return eval("require")(handlerModule).handle(kind, "update", id, olds, news);
    },
    async delete(id, props) {
      await eval("require")(handlerModule).handle(kind, "delete", id, props);
    },
  };
}
