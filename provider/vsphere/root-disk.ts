// An instance's root disk, made ready before its CreateVM_Task (Nova's vmops
// _use_disk_image_as_linked_clone / _use_disk_image_as_full_clone):
//   - the image is put in the chosen datastore's cache first when it is not there
//     (a server-side copy from a datastore that has it: no second upload);
//   - linked clone: the child disk is made by the create itself, on the cached base, or
//     on a sized base `<imageId>.<rootGb>.vmdk` when the root disk is larger than the image;
//   - full copy: the base copied into the VM's own folder and grown to the root size (the
//     folder exists before the create, so the create names it: files.vmPathName
//     `[ds] <vm>/<vm>.vmx`, or vCenter would make another folder beside it).
// What this call made for this VM alone (the full copy's folder) is undone by `undo`;
// shared things (the cache copy, a sized base) stay for other VMs and the cache policy.
import type { VimClient } from "./client.js";
import { copyVirtualDisk, DatastorePath, deleteFile, extendVirtualDisk, makeDirectory } from "./datastore.js";
import { cacheLocation, copyToDatastore, ensureSizedBase } from "./image-cache.js";
import type { Datacenter } from "./inventory.js";
import type { RootDiskOptions } from "./vm-spec.js";

const GiB = 2 ** 30;

export interface RootDiskRequest {
  datacenter: Datacenter;
  /** Where the VM goes. */
  datastore: string;
  /** A datastore whose cache has the image, when `datastore`'s may not. */
  cachedOn: string;
  cachePrefix: string;
  imageId: string;
  /** The image's disk size; the root disk is never smaller. */
  capacityBytes: number;
  /** The root disk's size; default the image's. */
  rootGb?: number;
  linkedClone: boolean;
  /** The VM's name: a full copy goes to `[datastore] <vmName>/<vmName>.vmdk`. */
  vmName: string;
}

export interface PreparedRootDisk {
  disk: RootDiskOptions;
  /** The base the disk comes from (the cached disk, or a sized base). */
  base: DatastorePath;
  /** Removes what was made for this VM alone (a full copy's folder); shared bases stay. */
  undo(): Promise<void>;
}

/** Makes the root disk ready for vm-spec's rootDisk (see the file comment). */
export async function prepareRootDisk(client: VimClient, r: RootDiskRequest): Promise<PreparedRootDisk> {
  const dc = r.datacenter;
  if (r.rootGb !== undefined && r.rootGb * GiB < r.capacityBytes) {
    throw new RangeError(`a root disk of ${r.rootGb} GiB is smaller than image ${r.imageId} (${(r.capacityBytes / GiB).toFixed(2)} GiB): a disk cannot shrink`);
  }
  if (r.cachedOn !== r.datastore) {
    await copyToDatastore(client, { datacenter: dc, fromDatastore: r.cachedOn, datastore: r.datastore, cachePrefix: r.cachePrefix, imageId: r.imageId, kind: "disk" });
  }
  const cached = cacheLocation(r.datastore, r.cachePrefix, r.imageId, "disk").disk;
  const grow = r.rootGb !== undefined && r.rootGb * GiB > r.capacityBytes;
  const nothing = async () => {};

  if (r.linkedClone) {
    const base = grow
      ? (await ensureSizedBase(client, { datacenter: dc, datastore: r.datastore, cachePrefix: r.cachePrefix, imageId: r.imageId, rootGb: r.rootGb!, capacityBytes: r.capacityBytes })).path
      : cached;
    const capacityKb = (grow ? r.rootGb! * GiB : r.capacityBytes) / 1024;
    return { disk: { kind: "linkedClone", base, capacityKb }, base, undo: nothing };
  }

  const folder = new DatastorePath(r.datastore, r.vmName);
  const fileName = folder.join(`${r.vmName}.vmdk`);
  const undo = async () => {
    await deleteFile(client, dc, folder);
  };
  try {
    await makeDirectory(client, dc, folder);
    await copyVirtualDisk(client, dc, cached, fileName);
    if (grow) await extendVirtualDisk(client, dc, fileName, r.rootGb! * 1024 * 1024);
  } catch (err) {
    await undo().catch(() => undefined);
    throw err;
  }
  const capacityKb = (grow ? r.rootGb! * GiB : r.capacityBytes) / 1024;
  return { disk: { kind: "copy", fileName, capacityKb }, base: cached, undo };
}
