/**
 * pulumi-vmware-vcenter: what the OpenStack Nova VMware vCenter driver does for
 * Nova, as Pulumi resources — `Image`, `Instance`, `PortGroup`, `ImageCachePolicy`
 * — over one vSphere driver core (`pulumi-vmware-vcenter/vsphere`).
 *
 * Settings come from the stack configuration (`vmware:*`, see README), never from
 * resource inputs.
 */
export { Image, ImageInUseError } from "./resources/image.js";
export type { ImageArgs, ImageCopy, ImageState } from "./resources/image.js";
export { ImageCachePolicy } from "./resources/image-cache-policy.js";
export type { DatastoreReport, ImageCachePolicyArgs, ImageCachePolicyState, SweepSummary } from "./resources/image-cache-policy.js";
export { Instance } from "./resources/instance.js";
export type { InstanceArgs, InstanceState, NetworkArgs, RootDiskState } from "./resources/instance.js";
export { PortGroup } from "./resources/port-group.js";
export type { PortGroupArgs, PortGroupState } from "./resources/port-group.js";
export { CONFIG_KEYS, ConfigError, resolveConfig } from "./config.js";
export type { DriverConfig } from "./config.js";
