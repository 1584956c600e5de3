// Which VMs use a disk: the truth in vCenter, not a database's idea of it (Nova's
// image cache asks its own). A VM uses a base disk when the disk is anywhere in one
// of its disks' backing chains: its own disk, or the `parent` of a linked clone's
// delta (and of that delta's parent, and so on, snapshots included). A VM also uses
// the file its CD-ROM (or floppy) is backed by: an ISO image's Instance boots from the
// cached `.iso` itself, which must count as in use like a disk.
//
// One property-collector traversal from the root folder reads every VM's name and
// devices (nested folders, datacenters' VM folders, vApps): one round trip for an
// inventory of up to maximum_objects VMs, no ContainerView to create and destroy.
import { z } from "zod";
import type { VimClient } from "./client.js";
import { DatastorePath, type PathLike } from "./datastore.js";
import { vmsUnder } from "./inventory-cache.js";
import { PropertyCollector } from "./property.js";
import { arrayOf, dataObject, str } from "./schema.js";
import { MoRef, type VimValue } from "./soap/xml.js";

export interface DiskUser {
  vm: MoRef;
  name: string;
}

const VmDisks = z.object({
  name: str,
  // Absent for a VM whose configuration cannot be read (orphaned, inaccessible).
  "config.hardware.device": arrayOf(dataObject({ $type: str.optional(), backing: z.unknown().optional() })).optional(),
  "config.files.vmPathName": str.optional(),
});

/** Chains longer than this are a loop in a broken backing, not a disk. */
const MAX_CHAIN = 256;

/** "[ds] a/b.vmdk" in one spelling (slashes and "." folded), or undefined for what is not a datastore path (an RDM's device path). */
function normalise(fileName: string): string | undefined {
  try {
    return DatastorePath.parse(fileName).toString();
  } catch {
    return undefined;
  }
}

/** Every file in a disk backing's chain: its own file, its parent's, and so on. */
function chainFiles(backing: unknown): string[] {
  const out: string[] = [];
  let b = backing;
  for (let depth = 0; depth < MAX_CHAIN && typeof b === "object" && b !== null && !Array.isArray(b) && !(b instanceof MoRef); depth++) {
    const { fileName, parent } = b as Record<string, VimValue | undefined>;
    const path = typeof fileName === "string" ? normalise(fileName) : undefined;
    if (path) out.push(path);
    b = parent;
  }
  return out;
}

/** Who uses the paths, and the VMs whose disks could not be read (any of them may use one). */
export interface DiskUsage {
  /** Per path given (as DatastorePath.toString() writes it), the VMs whose disk chains use it; [] when none. */
  users: Map<string, DiskUser[]>;
  /** VMs without a readable configuration (orphaned, inaccessible): their disks are unknown. */
  unreadable: DiskUser[];
}

/** A VM's disk files as one pass read them. */
export interface VmDiskFiles extends DiskUser {
  /** Every file of every disk's backing chain, normalised ("[ds] a/b.vmdk"). */
  files: string[];
  /** Its .vmx ("[ds] folder/name.vmx"), when readable. */
  vmPathName: string | undefined;
}

/**
 * Every VM's (templates included) disk chain files, in one paged property-collector
 * pass over the whole inventory, and the VMs whose configuration could not be read.
 */
export async function allVmDisks(client: VimClient, opts: { maxObjects?: number } = {}): Promise<{ vms: VmDiskFiles[]; unreadable: DiskUser[] }> {
  const contents = await new PropertyCollector(client).retrieve(
    [
      {
        propSet: [{ type: "VirtualMachine", pathSet: Object.keys(VmDisks.shape) }],
        objectSet: [vmsUnder(client.serviceContent.rootFolder)],
      },
    ],
    opts.maxObjects,
  );
  const vms: VmDiskFiles[] = [];
  const unreadable: DiskUser[] = [];
  for (const c of contents) {
    if (c.obj.type !== "VirtualMachine") continue;
    const vm = VmDisks.parse(c.props);
    const devices = vm["config.hardware.device"];
    if (devices === undefined) {
      unreadable.push({ vm: c.obj, name: vm.name });
      continue;
    }
    const used = new Set<string>();
    for (const device of devices) {
      if (device.$type !== "VirtualDisk" && device.$type !== "VirtualCdrom" && device.$type !== "VirtualFloppy") continue;
      for (const file of chainFiles(device.backing)) used.add(file);
    }
    const vmx = vm["config.files.vmPathName"];
    vms.push({ vm: c.obj, name: vm.name, files: [...used], vmPathName: vmx === undefined ? undefined : normalise(vmx) });
  }
  return { vms, unreadable };
}

/**
 * For each datastore path given, the VMs whose disk chains use it, and the VMs
 * whose disks could not be read: a caller deleting a base disk refuses while
 * either list is not empty.
 */
export async function diskUsage(client: VimClient, datastorePaths: PathLike[]): Promise<DiskUsage> {
  const users = new Map<string, DiskUser[]>();
  for (const p of datastorePaths) users.set((typeof p === "string" ? DatastorePath.parse(p) : p).toString(), []);
  if (users.size === 0) return { users, unreadable: [] };
  const { vms, unreadable } = await allVmDisks(client);
  for (const vm of vms) for (const file of vm.files) users.get(file)?.push({ vm: vm.vm, name: vm.name });
  return { users, unreadable };
}

/**
 * For each datastore path given, the VMs whose disk chains use it (an empty list
 * when none does). Keys are the paths as DatastorePath.toString() writes them.
 * VMs whose disks cannot be read are not in it: diskUsage says which they are.
 */
export async function diskUsers(client: VimClient, datastorePaths: PathLike[]): Promise<Map<string, DiskUser[]>> {
  return (await diskUsage(client, datastorePaths)).users;
}
