// A VM's power state and its removal, as Nova's vmops does them and safer for linked
// clones: delete is power off, UnregisterVM, then DeleteDatastoreFile_Task of the VM's
// own folder — never Destroy_Task, which on vCenter can take the disks of a linked
// clone's parent chain with it (the cached base other VMs use). A VM already gone, or
// already in the wanted state, is success: each step can be re-run after a failure.
import { z } from "zod";
import type { VimClient } from "./client.js";
import { DatastorePath, deleteFile } from "./datastore.js";
import { ManagedObjectNotFoundFault, VimFault } from "./errors.js";
import type { Datacenter } from "./inventory.js";
import { PropertyCollector, type PropertyFilterSpec, type RawObjectContent } from "./property.js";
import { str } from "./schema.js";
import type { MoRef } from "./soap/xml.js";
import { runTask } from "./task.js";

export type PowerState = "poweredOn" | "poweredOff" | "suspended";

const VmStateProps = z.object({ "runtime.powerState": str, "config.files.vmPathName": str.optional(), name: str });

/** What vmState says of a VM. */
export interface VmState {
  name: string;
  powerState: PowerState;
  folder: DatastorePath | undefined;
}

/** A VM's power state, its name and the datastore folder of its .vmx; undefined when it is gone. */
export async function vmState(client: VimClient, vm: MoRef): Promise<VmState | undefined> {
  try {
    return stateOf(await new PropertyCollector(client).get(vm, VmStateProps));
  } catch (err) {
    if (err instanceof ManagedObjectNotFoundFault) return undefined;
    throw err;
  }
}

/** The read vmState makes, to run beside another in one round trip (a VM gone is reported, not thrown). */
export function vmStateSpec(vm: MoRef): PropertyFilterSpec {
  return { propSet: [{ type: "VirtualMachine", pathSet: Object.keys(VmStateProps.shape) }], objectSet: [{ obj: vm }], reportMissingObjectsInResults: true };
}

/** vmState from the contents of a vmStateSpec read: undefined when the VM is gone. */
export function vmStateIn(vm: MoRef, contents: readonly RawObjectContent[]): VmState | undefined {
  const c = contents.find((x) => x.obj.equals(vm));
  if (!c) return undefined;
  const gone = c.missing.find((m) => m.fault instanceof ManagedObjectNotFoundFault);
  if (gone) return undefined;
  if (c.missing.length) throw c.missing[0]!.fault;
  return stateOf(VmStateProps.parse(c.props));
}

function stateOf(p: z.infer<typeof VmStateProps>): VmState {
  const vmx = p["config.files.vmPathName"];
  return { name: p.name, powerState: p["runtime.powerState"] as PowerState, folder: vmx ? DatastorePath.parse(vmx).parent : undefined };
}

/** Whether the VM is still registered. */
export async function vmExists(client: VimClient, vm: MoRef): Promise<boolean> {
  return (await vmState(client, vm)) !== undefined;
}

/** UnregisterVM; a lost answer is checked by whether the VM is still registered; gone already is done. */
export async function unregisterVm(client: VimClient, vm: MoRef): Promise<void> {
  try {
    await client.invoke("UnregisterVM", vm, {}, { checkApplied: async () => ((await vmExists(client, vm)) ? { applied: false } : { applied: true }) });
  } catch (err) {
    if (!(err instanceof ManagedObjectNotFoundFault)) throw err;
  }
}

/** A power operation refused because the VM is in that state already (another writer got there). */
const alreadyThere = (err: unknown) => err instanceof VimFault && err.code === "InvalidPowerState";

/**
 * Brings the VM to `want` from `from` (what the caller read): on, off (a hard power off,
 * as Nova's destroy), or suspended (which needs it on first). Resolves the state reached.
 */
export async function setPowerState(client: VimClient, vm: MoRef, from: PowerState, want: PowerState): Promise<PowerState> {
  const step = async (method: "PowerOnVM_Task" | "PowerOffVM_Task" | "SuspendVM_Task") => {
    try {
      await runTask(client, method, vm, {});
    } catch (err) {
      if (!alreadyThere(err)) throw err;
    }
  };
  if (from === want) return want;
  if (want === "poweredOff") await step("PowerOffVM_Task");
  else if (want === "poweredOn") await step("PowerOnVM_Task");
  else {
    if (from !== "poweredOn") await step("PowerOnVM_Task");
    await step("SuspendVM_Task");
  }
  return want;
}

/**
 * Removes a VM as Nova does: powered off, unregistered, its folder deleted (its own disks,
 * a linked clone's delta among them; a parent disk outside the folder stays). Resolves
 * false when the VM was gone already. `folder` is for a VM whose configuration cannot be
 * read any more (the caller's record of it).
 */
export async function removeVm(
  client: VimClient,
  datacenter: Datacenter,
  vm: MoRef,
  /** `state`: the VM's as read moments before (vmStateSpec beside another read); read here when absent. */
  opts: { folder?: DatastorePath; state?: { read: VmState | undefined } } = {},
): Promise<boolean> {
  const state = opts.state ? opts.state.read : await vmState(client, vm);
  if (!state) {
    // Unregistered already (an earlier attempt stopped after that): the folder may still be there.
    if (opts.folder) await deleteFile(client, datacenter, opts.folder);
    return false;
  }
  if (state.powerState !== "poweredOff") await setPowerState(client, vm, state.powerState, "poweredOff");
  await unregisterVm(client, vm);
  const folder = state.folder ?? opts.folder;
  // A VM at a datastore's root has no folder of its own: its files are not ours to sweep.
  if (folder && folder.path !== "") await deleteFile(client, datacenter, folder);
  return true;
}
