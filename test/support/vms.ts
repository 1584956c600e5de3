// VMs for tests that need a disk to be used: made with CreateVM_Task and given a disk,
// or a delta disk on top of another as Nova's linked clone makes it.
import type { VimClient } from "../../provider/vsphere/client.js";
import type { Cluster, Datacenter } from "../../provider/vsphere/inventory.js";
import { moRef } from "../../provider/vsphere/schema.js";
import type { MoRef } from "../../provider/vsphere/soap/xml.js";
import { runTask } from "../../provider/vsphere/task.js";

/** An empty VM whose files go to the datastore `ds`. */
export async function createVm(client: VimClient, dc: Datacenter, cluster: Cluster, name: string, ds: string): Promise<MoRef> {
  return moRef.parse(
    await runTask(client, "CreateVM_Task", dc.vmFolder, {
      config: { name, guestId: "otherGuest", files: { vmPathName: `[${ds}]` }, numCPUs: 1, memoryMB: 64 },
      pool: cluster.resourcePool,
    }),
  );
}

/**
 * The deviceChange entry that adds a disk on the first IDE controller: a new file, or
 * (parent given) a delta on top of it, as Nova's linked clone.
 */
export function diskAdd(fileName: string, parent?: Record<string, unknown>, capacityInKB = 1024): Record<string, unknown> {
  return {
    operation: "add",
    fileOperation: "create",
    device: {
      $type: "VirtualDisk",
      key: -1,
      backing: {
        $type: "VirtualDiskFlatVer2BackingInfo",
        fileName,
        diskMode: "persistent",
        ...(parent ? { parent: { $type: "VirtualDiskFlatVer2BackingInfo", ...parent } } : {}),
      },
      controllerKey: 200,
      unitNumber: 0,
      capacityInKB,
    },
  };
}

/** Adds that disk to an existing VM (ReconfigVM_Task). */
export async function addDisk(client: VimClient, vm: MoRef, fileName: string, parent?: Record<string, unknown>): Promise<void> {
  await runTask(client, "ReconfigVM_Task", vm, { spec: { deviceChange: [diskAdd(fileName, parent)] } });
}

/** A disk made by vCenter (CreateVirtualDisk_Task): a base for linked clones, or a chain's middle link. */
export async function createDisk(client: VimClient, dc: Datacenter, name: string, capacityKb: number, diskType: "thin" | "preallocated" = "preallocated"): Promise<void> {
  await runTask(client, "CreateVirtualDisk_Task", client.serviceContent.virtualDiskManager!, {
    name,
    datacenter: dc.ref,
    spec: { $type: "FileBackedVirtualDiskSpec", diskType, adapterType: "lsiLogic", capacityKb },
  });
}
