/**
 * pulumi-vmware-vcenter: what the OpenStack Nova VMware vCenter driver does for
 * Nova, as Pulumi resources — `Image`, `Instance`, `PortGroup`, `ImageCachePolicy`
 * — over one vSphere driver core (`pulumi-vmware-vcenter/vsphere`).
 *
 * The resources are exported here as they land; see README "Status".
 */

/** Pulumi type tokens of this package's dynamic resources: `pulumi-nodejs:dynamic/vmware:<Name>`. */
export const RESOURCE_TYPE_PREFIX = "vmware";
