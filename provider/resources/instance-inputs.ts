// Instance inputs: the Args type users write, the zod schema `check` validates with,
// and the image's properties as an Instance needs them (from an Image's outputs, or
// from the holder marker an Image wrote beside the cached disk, as Nova reads Glance).
import type * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { imageIdSchema } from "../vsphere/image-cache.js";
import { ADAPTER_TYPES, type AdapterType } from "../vsphere/vmdk.js";
import { NIC_MODELS, type NicModel } from "../vsphere/vm-spec.js";
import { guestIdInputFailure } from "./image-inputs.js";

/** A NIC: on a PortGroup (standard or distributed), or on a standard network by name, or a distributed port group by switch uuid and key. */
export interface NetworkArgs {
  /**
   * A PortGroup resource (its outputs say standard or distributed), or the name of a
   * standard port group. Ignored with `vmware:integrationBridge` (every NIC goes to that bridge, as Nova's NSX mode).
   */
  portGroup?: pulumi.Input<string> | { kind: pulumi.Input<"standard" | "distributed">; name: pulumi.Input<string>; switchUuid: pulumi.Input<string | undefined>; portgroupKey: pulumi.Input<string | undefined> };
  /** A distributed port group by its switch's uuid (with portgroupKey). */
  switchUuid?: pulumi.Input<string>;
  portgroupKey?: pulumi.Input<string>;
  /** vmxnet3 (default), e1000 or e1000e: Nova's hw_vif_model. */
  model?: pulumi.Input<NicModel>;
  /** A fixed MAC address (aa:bb:cc:dd:ee:ff); default: vCenter generates one. */
  macAddress?: pulumi.Input<string>;
}

/** The image's properties an Instance needs (an Image's outputs carry them). */
export interface ImageLike {
  imageId: pulumi.Input<string>;
  kind: pulumi.Input<"disk" | "iso">;
  adapterType: pulumi.Input<AdapterType | undefined>;
  osType: pulumi.Input<string>;
  linkedClone: pulumi.Input<boolean>;
  capacityBytes: pulumi.Input<number | undefined>;
  cachePrefix: pulumi.Input<string>;
  cached: pulumi.Input<Record<string, unknown>>;
}

export type Shares = "low" | "normal" | "high" | number;

export interface InstanceArgs {
  /** The image to boot: an Image resource (its properties come with it). Or give `imageId`. */
  image?: ImageLike;
  /** A cached image by id (e.g. another stack's Image, or Nova's Glance id in a shared cache): its properties are read from the marker its Image wrote beside the cached disk. */
  imageId?: pulumi.Input<string>;
  /** Virtual CPUs (the flavor's vcpus). */
  cpus: pulumi.Input<number>;
  /** Cores per socket; must divide cpus. Default 1. */
  coresPerSocket?: pulumi.Input<number>;
  /** Memory in MB (the flavor's ram). */
  memoryMb: pulumi.Input<number>;
  /** Root disk size in GiB (the flavor's root_gb). Default: the image's size. Required for an ISO image (a blank disk). Grows in place; never shrinks. */
  rootDiskGb?: pulumi.Input<number>;
  /** Allow adding CPUs / memory while the VM runs, so a resize needs no power cycle. Set at create (changing it needs a power cycle). Default false. */
  cpuHotAdd?: pulumi.Input<boolean>;
  memoryHotAdd?: pulumi.Input<boolean>;
  /** CPU reservation / limit in MHz (-1: unlimited) and shares (low | normal | high, or a count): Nova's quota:cpu_* extra specs. */
  cpuReservationMhz?: pulumi.Input<number>;
  cpuLimitMhz?: pulumi.Input<number>;
  cpuShares?: pulumi.Input<Shares>;
  /** Memory reservation / limit in MB (-1: unlimited) and shares: Nova's quota:memory_*. */
  memoryReservationMb?: pulumi.Input<number>;
  memoryLimitMb?: pulumi.Input<number>;
  memoryShares?: pulumi.Input<Shares>;
  /** The guest id; default the image's osType (vmware_ostype). */
  guestId?: pulumi.Input<string>;
  /** A human name, written into the VM's annotation (the VM's own name is its instance uuid, as Nova names VMs). Default: the resource's name. */
  displayName?: pulumi.Input<string>;
  /** User metadata, kept in the VM's extraConfig (`pulumi.metadata.<key>`). */
  metadata?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  networks?: pulumi.Input<pulumi.Input<NetworkArgs>[]>;
  /** on (default) | off | suspended. */
  powerState?: pulumi.Input<"on" | "off" | "suspended">;
  /** The cluster. Default: `vmware:clusterName`. */
  clusterName?: pulumi.Input<string>;
  /** A resource pool of the cluster by path ("prod" or "prod/web"). Default: the cluster's root pool (DRS places, as Nova). */
  resourcePool?: pulumi.Input<string>;
  /** A VM folder of the datacenter by path ("pulumi/web"). Default: the datacenter's VM folder. */
  folder?: pulumi.Input<string>;
  /** The datastore of the VM's files and root disk. Default: chosen as Nova does (`vmware:datastoreRegex`, else most free space; one that has the image cached wins among those that fit). */
  datastore?: pulumi.Input<string>;
  /** A storage policy by name, with `vmware:pbmEnabled` (default `vmware:pbmDefaultPolicy`). */
  storagePolicy?: pulumi.Input<string>;
  /** A VNC console on a port of 5900-6105 unique among the VMs of the cluster's hosts. Default true. */
  vnc?: pulumi.Input<boolean>;
  /** Take over an existing VM (its instance uuid, or its managed object id "vm-123") instead of creating one: up brings it to these inputs. The engine's import does not reach dynamic providers. */
  adopt?: pulumi.Input<string>;
}

export const INPUT_KEYS = [
  "image",
  "imageId",
  "cpus",
  "coresPerSocket",
  "memoryMb",
  "rootDiskGb",
  "cpuHotAdd",
  "memoryHotAdd",
  "cpuReservationMhz",
  "cpuLimitMhz",
  "cpuShares",
  "memoryReservationMb",
  "memoryLimitMb",
  "memoryShares",
  "guestId",
  "displayName",
  "metadata",
  "networks",
  "powerState",
  "clusterName",
  "resourcePool",
  "folder",
  "datastore",
  "storagePolicy",
  "vnc",
  "adopt",
] as const;

/** Inputs the class sets (not for users): the resource's name and URN. */
export const CLASS_INPUT_KEYS = ["resourceName", "resourceUrn"] as const;

const shares = z.union([z.enum(["low", "normal", "high"]), z.number().int().min(1, "a share count of at least 1")]);
const mac = z.string().regex(/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/, "a MAC address such as 00:50:56:aa:bb:cc");

export const NetworkSchema = z
  .strictObject({
    portGroup: z.string().trim().min(1, "a port group name").optional(),
    switchUuid: z.string().trim().min(1).optional(),
    portgroupKey: z.string().trim().min(1).optional(),
    model: z.enum(NIC_MODELS).default("vmxnet3"),
    macAddress: mac.transform((m) => m.toLowerCase()).optional(),
  })
  .refine((n) => (n.switchUuid === undefined) === (n.portgroupKey === undefined), "switchUuid and portgroupKey together (a distributed port group)")
  .refine((n) => !(n.portGroup !== undefined && n.switchUuid !== undefined), "either portGroup or switchUuid + portgroupKey, not both");
export type NetworkInput = z.infer<typeof NetworkSchema>;

export const ImageInfoSchema = z.object({
  imageId: imageIdSchema,
  kind: z.enum(["disk", "iso"]),
  adapterType: z.enum(ADAPTER_TYPES).optional(),
  osType: z.string().default("otherGuest"),
  linkedClone: z.boolean().optional(),
  capacityBytes: z.number().nonnegative().optional(),
  cachePrefix: z.string().default(""),
  /** Datastores that have it cached. */
  datastores: z.array(z.string()).default([]),
});
export type ImageInfo = z.infer<typeof ImageInfoSchema>;

export const InputsSchema = z.strictObject({
  image: ImageInfoSchema.optional(),
  imageId: imageIdSchema.optional(),
  cpus: z.number().int().min(1, "a whole number of CPUs, 1 or more").max(768),
  coresPerSocket: z.number().int().min(1).optional(),
  memoryMb: z.number().int().min(4, "a whole number of MB, at least 4").max(24 * 1024 * 1024),
  rootDiskGb: z.number().int().min(1, "a whole number of GiB, 1 or more").max(62 * 1024).optional(),
  cpuHotAdd: z.boolean().optional(),
  memoryHotAdd: z.boolean().optional(),
  cpuReservationMhz: z.number().int().min(0).optional(),
  cpuLimitMhz: z.number().int().min(-1).optional(),
  cpuShares: shares.optional(),
  memoryReservationMb: z.number().int().min(0).optional(),
  memoryLimitMb: z.number().int().min(-1).optional(),
  memoryShares: shares.optional(),
  guestId: z.string().trim().min(1).optional(),
  displayName: z.string().min(1).max(1000).optional(),
  // Keys checked one by one: zod's record key error says only "Invalid key in record".
  metadata: z
    .record(z.string(), z.string())
    .superRefine((m, ctx) => {
      for (const k of Object.keys(m)) {
        if (!/^[A-Za-z0-9_.-]{1,200}$/.test(k)) ctx.addIssue({ code: "custom", path: [k], message: `a key of letters, digits, '_', '.' or '-' (1-200 of them), not ${JSON.stringify(k)}` });
      }
    })
    .optional(),
  networks: z.array(NetworkSchema).max(10, "at most 10 NICs (vSphere's limit per VM)").optional(),
  powerState: z.enum(["on", "off", "suspended"]).default("on"),
  clusterName: z.string().trim().min(1).optional(),
  resourcePool: z.string().trim().min(1).optional(),
  folder: z.string().trim().min(1).optional(),
  datastore: z.string().trim().min(1).optional(),
  storagePolicy: z.string().trim().min(1).optional(),
  vnc: z.boolean().default(true),
  adopt: z.string().trim().min(1).optional(),
  resourceName: z.string().optional(),
  resourceUrn: z.string().optional(),
});
export type Inputs = z.infer<typeof InputsSchema>;

/** guestId: a known guest id, else a failure naming the closest ones. */
export function guestIdFailure(guestId: string): pulumi.dynamic.CheckFailure | undefined {
  return guestIdInputFailure("guestId", guestId);
}

/** "on" | "off" | "suspended" as vim25's VirtualMachinePowerState. */
export const POWER_STATES = { on: "poweredOn", off: "poweredOff", suspended: "suspended" } as const;
export type PowerInput = keyof typeof POWER_STATES;
export function powerInputOf(s: string): PowerInput {
  return s === "poweredOn" ? "on" : s === "suspended" ? "suspended" : "off";
}

/** A shares input as vm-spec's AllocationOptions.shares. */
export function sharesOf(s: Shares | undefined): { level: "low" | "normal" | "high" } | { level: "custom"; count: number } | undefined {
  if (s === undefined) return undefined;
  return typeof s === "number" ? { level: "custom", count: s } : { level: s };
}
