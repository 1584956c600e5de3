// Where an Instance goes and what it boots: the image's properties (from an Image's
// outputs, or from the holder marker beside a cached disk when only its id is given),
// the datastore (explicit, by storage policy, or Nova's choice preferring one that has
// the image cached), and the sizes that decide whether the root disk fits.
import type { VimClient } from "../vsphere/client.js";
import type { Alongside } from "../vsphere/property.js";
import { NotFoundError } from "../vsphere/errors.js";
import { cacheLocation, type CachedKind } from "../vsphere/image-cache.js";
import { readHolders } from "../vsphere/image-holders.js";
import { getDatastores, type Cluster } from "../vsphere/inventory.js";
import { ADAPTER_TYPES, type AdapterType } from "../vsphere/vmdk.js";
import { cachedLook, chooseDatastores, readCopies } from "./image-placement.js";
import type { ImageInfo } from "./instance-inputs.js";

const GiB = 2 ** 30;

/** The image is not cached on any datastore of the cluster. */
export class ImageNotCachedError extends NotFoundError {
  constructor(imageId: string, cluster: string, cachePrefix: string) {
    super(
      `image ${imageId} is not cached on any datastore of cluster ${cluster} (cache folder ${cachePrefix}_base): declare its Image in this stack (image: img), or check the imageId and vmware:cachePrefix`,
      "image",
      imageId,
    );
  }
}

/**
 * An image's properties from its id alone: the datastores whose cache has it, and the
 * properties its Image wrote into its holder marker (the newest marker wins). A copy no
 * Image holds (cached by Nova, or by hand) boots with Nova's defaults: lsiLogic,
 * otherGuest, linked clone per vmware:useLinkedClone.
 */
export async function imageInfoById(client: VimClient, cluster: Cluster, cachePrefix: string, imageId: string): Promise<ImageInfo> {
  const names = (await getDatastores(client, cluster.datastores)).map((d) => d.name).sort();
  for (const kind of ["disk", "iso"] as const) {
    const { cached } = await readCopies(client, cluster.datacenter, names, cachePrefix, imageId, kind);
    const datastores = Object.keys(cached);
    if (datastores.length === 0) continue;
    const notes = await readHolders(client, cluster.datacenter, cacheLocation(datastores[0]!, cachePrefix, imageId, kind).folder);
    const note = notes[0]?.note ?? {};
    const adapter = typeof note.adapterType === "string" && (ADAPTER_TYPES as readonly string[]).includes(note.adapterType) ? (note.adapterType as AdapterType) : undefined;
    return {
      imageId,
      kind,
      ...(kind === "disk" ? { adapterType: adapter ?? "lsiLogic" } : {}),
      osType: typeof note.osType === "string" ? note.osType : "otherGuest",
      ...(typeof note.linkedClone === "boolean" ? { linkedClone: note.linkedClone } : {}),
      ...(typeof note.capacityBytes === "number" ? { capacityBytes: note.capacityBytes } : kind === "iso" ? { capacityBytes: cached[datastores[0]!]!.sizeBytes } : {}),
      cachePrefix,
      datastores,
    };
  }
  throw new ImageNotCachedError(imageId, cluster.name, cachePrefix);
}

export interface DiskPlan {
  /** The root disk's size in GiB when it differs from the image's (grown); undefined: the image's size. */
  rootGb: number | undefined;
  /** Bytes the chosen datastore must have free. */
  requiredBytes: number;
  linkedClone: boolean;
}

/** How big the root disk is and how much room it needs, as Nova sizes it. */
export function diskPlan(image: ImageInfo, rootDiskGb: number | undefined, linkedClone: boolean): DiskPlan {
  const capacity = image.capacityBytes ?? 0;
  if (image.kind === "iso") {
    if (rootDiskGb === undefined) throw new RangeError(`image ${image.imageId} is an ISO: give rootDiskGb, the size of the blank root disk`);
    return { rootGb: rootDiskGb, requiredBytes: rootDiskGb * GiB, linkedClone: false };
  }
  if (rootDiskGb !== undefined && rootDiskGb * GiB < capacity) {
    throw new RangeError(`rootDiskGb ${rootDiskGb} is smaller than image ${image.imageId} (${(capacity / GiB).toFixed(2)} GiB): a disk cannot shrink`);
  }
  const grow = rootDiskGb !== undefined && rootDiskGb * GiB > capacity;
  const rootGb = grow ? rootDiskGb : undefined;
  // A linked clone needs room for the image's copy (and a sized base) in that datastore's
  // cache, its delta grows later; a full copy needs its whole disk.
  const requiredBytes = linkedClone ? capacity : Math.max(capacity, (rootGb ?? 0) * GiB);
  return { rootGb, requiredBytes, linkedClone };
}

/**
 * The datastore of a new VM: the one named (checked as Nova checks a candidate), else
 * Nova's choice (`datastoreRegex`, else most free space) among those that fit — where a
 * fitting datastore that has the image cached wins, so no copy is made. `allowed` (a
 * storage policy's compatible datastores) narrows the candidates.
 */
export async function chooseVmDatastore(
  client: VimClient,
  cluster: Cluster,
  o: {
    named?: string | undefined;
    regex?: string | undefined;
    requiredBytes: number;
    image: ImageInfo;
    cachePrefix: string;
    allowed?: string[] | undefined;
    /** Reads to make in the same round trip as the datastores' (the VNC ports before a create). */
    alongside?: Alongside | undefined;
  },
): Promise<string> {
  if (o.named) return (await chooseDatastores(client, cluster, [o.named], undefined, o.requiredBytes, undefined, o.alongside))[0]!;
  const kind: CachedKind = o.image.kind;
  const look = cachedLook(client, cluster.datacenter, o.cachePrefix, o.image.imageId, kind);
  const known = new Set(o.image.datastores);
  const cached = async (ds: string) => known.has(ds) || look(ds);
  if (o.allowed) {
    if (o.allowed.length === 0) throw new NotFoundError(`no datastore of cluster ${cluster.name} is compatible with the storage policy`, "datastore");
    // The policy's datastores replace the regex (as Nova: with PBM, the policy filters instead).
    const alternatives = o.allowed.map((ds) => `^${ds.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`).join("|");
    return (await chooseDatastores(client, cluster, undefined, alternatives, o.requiredBytes, cached, o.alongside))[0]!;
  }
  return (await chooseDatastores(client, cluster, undefined, o.regex, o.requiredBytes, cached, o.alongside))[0]!;
}
