// What a VM is, as read from vCenter (vm-read.ts reads it in one property-collector
// call), and what an update wants it to become (vm-update.ts plans and applies the
// difference). Types only: the shared vocabulary of reading, refreshing and
// reconfiguring an instance's VM.
import type { MoRef } from "./soap/xml.js";
import type { PowerState } from "./vm-lifecycle.js";
import type { AllocationOptions, DistributedNicBacking, NicModel, NicOptions, SharesLevel, StandardNicBacking } from "./vm-spec.js";

/** A NIC's backing as read: a standard or distributed port group, or something else (opaque network, ...). */
export type NicBackingView = StandardNicBacking | DistributedNicBacking | { kind: "other"; type: string };

export interface VmNicView {
  key: number;
  /** vmxnet3 / e1000 / e1000e, or the vim25 type of another card (e.g. "VirtualPCNet32"). */
  model: NicModel | string;
  macAddress?: string;
  /** "manual", "generated" or "assigned". */
  addressType?: string;
  backing: NicBackingView;
  startConnected?: boolean;
  connected?: boolean;
  /** The device object as read, for an `edit` deviceChange. */
  device: unknown;
}

export interface VmDiskView {
  key: number;
  controllerKey: number;
  unitNumber?: number;
  /** The vim25 type of its controller (VirtualLsiLogicController, VirtualIDEController, ...). */
  controllerType: string;
  /** `[ds] folder/name.vmdk`. */
  fileName: string;
  capacityKb: number;
  /** The backing chain's parents, nearest first (a linked clone: the cached base, then its parents). */
  parents: string[];
  thinProvisioned?: boolean;
  /** The device object as read, for an `edit` deviceChange. */
  device: unknown;
}

export interface AllocationView {
  reservation: number;
  /** -1: unlimited. */
  limit: number;
  shares: { level: SharesLevel | "custom"; count: number };
}

export interface VmView {
  vm: MoRef;
  name: string;
  instanceUuid: string;
  guestId: string;
  annotation: string;
  cpus: number;
  coresPerSocket: number;
  memoryMb: number;
  cpuHotAdd: boolean;
  memoryHotAdd: boolean;
  cpuAllocation: AllocationView;
  memoryAllocation: AllocationView;
  powerState: PowerState;
  host?: MoRef;
  hostName?: string;
  resourcePool?: MoRef;
  /** `config.files.vmPathName`: `[ds] folder/name.vmx`. */
  vmxPath: string;
  /** Every extraConfig entry (values as strings). */
  extraConfig: Record<string, string>;
  /** The user metadata: extraConfig entries under vm-spec's METADATA_PREFIX, the prefix taken off. */
  metadata: Record<string, string>;
  vncPort?: number;
  vncEnabled: boolean;
  disks: VmDiskView[];
  nics: VmNicView[];
  cdroms: Array<{ key: number; iso?: string }>;
  serialPorts: Array<{ key: number; serviceUri?: string; proxyUri?: string; direction?: string }>;
  controllers: Array<{ key: number; type: string; busNumber: number }>;
}

/**
 * What an update wants; absent fields stay as they are. `nics` and `metadata` are the
 * whole wanted list / map (a NIC or key not in it is removed).
 */
export interface VmChanges {
  cpus?: number;
  coresPerSocket?: number;
  memoryMb?: number;
  /** CPU / memory hot add (vCenter changes them only while the VM is off). */
  cpuHotAdd?: boolean;
  memoryHotAdd?: boolean;
  cpuAllocation?: AllocationOptions;
  memoryAllocation?: AllocationOptions;
  /** The root disk's wanted size in KB: growth only. */
  rootDiskKb?: number;
  nics?: NicOptions[];
  metadata?: Record<string, string>;
  annotation?: string;
  powerState?: PowerState;
}
