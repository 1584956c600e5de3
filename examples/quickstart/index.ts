// Quickstart: grows with every resource of pulumi-vmware-vcenter. Run it with
// `npm run demo` (embedded simulator) or `pulumi up` against your own vCenter.
import * as pulumi from "@pulumi/pulumi";

const vmware = new pulumi.Config("vmware");

/** The vCenter and cluster this stack manages (stack config `vmware:hostIp`, `vmware:clusterName`). */
export const vcenter = vmware.get("hostIp") ?? process.env.VSPHERE_SERVER ?? "(vmware:hostIp not set)";
export const cluster = vmware.get("clusterName") ?? "(vmware:clusterName not set)";
