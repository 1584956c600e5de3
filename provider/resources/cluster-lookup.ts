// The cluster a resource works in, looked up once per process and session: check reads
// it, and the create or update that follows in the same process uses it again (one
// traversal fewer). Per client, so a new session reads it afresh; a failed look-up is
// not kept.
import { NotFoundError } from "../vsphere/errors.js";
import type { VimClient } from "../vsphere/client.js";
import { findCluster, type Cluster } from "../vsphere/inventory.js";
import type { HandlerContext } from "./handler-types.js";

const clusters = new WeakMap<VimClient, Map<string, Promise<Cluster>>>();

/** The cluster `name` (default vmware:clusterName), in `datacenter` when given. */
export function clusterOf(ctx: HandlerContext, client: VimClient, name: string | undefined, datacenter?: string): Promise<Cluster> {
  const clusterName = name ?? ctx.config().clusterName;
  if (!clusterName) return Promise.reject(new NotFoundError("no cluster: set clusterName, or the vmware:clusterName config", "cluster"));
  let perClient = clusters.get(client);
  if (!perClient) clusters.set(client, (perClient = new Map()));
  const key = JSON.stringify([clusterName, datacenter ?? null]);
  let found = perClient.get(key);
  if (!found) {
    const map = perClient;
    found = findCluster(client, clusterName, datacenter);
    map.set(key, found);
    found.catch(() => map.delete(key));
  }
  return found;
}
