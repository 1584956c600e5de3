// Where a VM goes besides its host and datastore: a resource pool of its cluster and a
// VM folder of its datacenter, named by path ("prod/web") as users write them. Each
// look-up is one property-collector call (a traversal of the pools or folders below the
// root), and a name not found is an error that lists the paths there are.
import { z } from "zod";
import type { VimClient } from "./client.js";
import { NotFoundError } from "./errors.js";
import type { Cluster, Datacenter } from "./inventory.js";
import { traversal } from "./inventory-cache.js";
import { PropertyCollector } from "./property.js";
import { moRef, str } from "./schema.js";
import type { MoRef } from "./soap/xml.js";

const Named = z.object({ name: str, parent: moRef.optional() });

/** Every object of `type` below `root` by its path of names from the root ("a/b"). */
async function pathsBelow(client: VimClient, root: MoRef, type: "ResourcePool" | "Folder", via: string): Promise<Map<string, MoRef>> {
  const contents = await new PropertyCollector(client).retrieve([
    {
      propSet: [{ type, pathSet: ["name", "parent"] }],
      objectSet: [{ obj: root, skip: true, selectSet: [traversal("down", type, via, ["down"])] }],
    },
  ]);
  const byRef = new Map<string, { ref: MoRef; name: string; parent: string | undefined }>();
  for (const c of contents) {
    if (c.obj.type !== type) continue;
    const p = Named.parse(c.props);
    byRef.set(c.obj.toString(), { ref: c.obj, name: p.name, parent: p.parent?.toString() });
  }
  const pathOf = (key: string, seen = new Set<string>()): string | undefined => {
    const node = byRef.get(key);
    if (!node || seen.has(key)) return undefined;
    seen.add(key);
    if (node.parent === root.toString()) return node.name;
    const up = node.parent ? pathOf(node.parent, seen) : undefined;
    return up === undefined ? undefined : `${up}/${node.name}`;
  };
  const out = new Map<string, MoRef>();
  for (const [key, node] of byRef) {
    const path = pathOf(key);
    if (path !== undefined) out.set(path, node.ref);
  }
  return out;
}

const clean = (path: string) => path.split("/").filter((s) => s !== "").join("/");

/** A resource pool of the cluster by path below its root pool ("prod", "prod/web"). */
export async function findResourcePool(client: VimClient, cluster: Cluster, path: string): Promise<MoRef> {
  const want = clean(path);
  if (want === "" || want === "Resources") return cluster.resourcePool;
  const pools = await pathsBelow(client, cluster.resourcePool, "ResourcePool", "resourcePool");
  const hit = pools.get(want) ?? pools.get(clean(want.replace(/^Resources\//, "")));
  if (hit) return hit;
  const there = [...pools.keys()].sort().join(", ") || "none below the root pool";
  throw new NotFoundError(`resource pool "${path}" not found in cluster ${cluster.name} (there are: ${there})`, "resourcePool", path);
}

/** A VM folder of the datacenter by path below its VM folder ("pulumi", "pulumi/web"). */
export async function findVmFolder(client: VimClient, datacenter: Datacenter, path: string): Promise<MoRef> {
  const want = clean(path);
  if (want === "" || want === "vm") return datacenter.vmFolder;
  const folders = await pathsBelow(client, datacenter.vmFolder, "Folder", "childEntity");
  const hit = folders.get(want) ?? folders.get(clean(want.replace(/^vm\//, "")));
  if (hit) return hit;
  const there = [...folders.keys()].sort().join(", ") || "none below the VM folder";
  throw new NotFoundError(`VM folder "${path}" not found in datacenter ${datacenter.name} (there are: ${there})`, "folder", path);
}
