// An instance's root disk, made ready before its CreateVM_Task (Nova's vmops
// _use_disk_image_as_linked_clone / _use_disk_image_as_full_clone):
//   - the image is put in the chosen datastore's cache first when it is not there
//     (a server-side copy from a datastore that has it: no second upload);
//   - linked clone: the child disk is made by the create itself, on the cached base, or
//     on a sized base `<imageId>.<rootGb>.vmdk` when the root disk is larger than the image;
//   - full copy: the base copied into the VM's own folder and grown to the root size (the
//     folder exists before the create, so the create names it: files.vmPathName
//     `[ds] <vm>/<vm>.vmx`, or vCenter would make another folder beside it).
// What this call made for this VM alone is undone by `undo`: the full copy's folder, or a
// sized base this call made that no VM uses and no other create in this process waits
// for. Shared things (the cache copy, a sized base others use) stay for other VMs and
// the cache policy. `done` ends this call's hold on the base once the VM links to it.
import type { VimClient } from "./client.js";
import { copyVirtualDisk, DatastorePath, deleteFile, deleteVirtualDisk, extendVirtualDisk, makeDirectory } from "./datastore.js";
import { diskUsage } from "./disk-users.js";
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
  /** Removes what was made for this VM alone (a full copy's folder, a sized base nobody else uses); shared bases stay. */
  undo(): Promise<void>;
  /** The VM exists and links to the base: this call no longer holds it. */
  done(): void;
}

// Sized bases that creates in this process are about to link to (path -> count): a base
// one create made must not be removed by its undo while another create is using it.
const holds = new Map<string, number>();
function hold(path: string): () => void {
  holds.set(path, (holds.get(path) ?? 0) + 1);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    const n = (holds.get(path) ?? 1) - 1;
    if (n <= 0) holds.delete(path);
    else holds.set(path, n);
  };
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
    const capacityKb = (grow ? r.rootGb! * GiB : r.capacityBytes) / 1024;
    if (!grow) return { disk: { kind: "linkedClone", base: cached, capacityKb }, base: cached, undo: nothing, done: () => {} };
    const sized = await ensureSizedBase(client, { datacenter: dc, datastore: r.datastore, cachePrefix: r.cachePrefix, imageId: r.imageId, rootGb: r.rootGb!, capacityBytes: r.capacityBytes });
    const key = sized.path.toString();
    const release = hold(key);
    const undo = async () => {
      release();
      if (!sized.made || holds.has(key)) return;
      const usage = await diskUsage(client, [sized.path]);
      if ((usage.users.get(key)?.length ?? 0) > 0 || usage.unreadable.length > 0) return;
      await deleteVirtualDisk(client, dc, sized.path);
    };
    return { disk: { kind: "linkedClone", base: sized.path, capacityKb }, base: sized.path, undo, done: release };
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
  return { disk: { kind: "copy", fileName, capacityKb }, base: cached, undo, done: () => {} };
}
