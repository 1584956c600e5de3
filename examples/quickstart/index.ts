// Quickstart: what a user copies. It grows with every resource of
// pulumi-vmware-vcenter. Run it with `npm run demo` (the embedded simulator) or
// `pulumi up` against your own vCenter (README: stack configuration).
import * as pulumi from "@pulumi/pulumi";
import { PortGroup } from "pulumi-vmware-vcenter";

const cfg = new pulumi.Config("quickstart");

// The flat network instances attach to: a port group on every host of the
// cluster (vmware:clusterName), on the vSwitch that uses vmware:vlanInterface.
const network = new PortGroup("instances", {
  name: cfg.get("networkName") ?? "quickstart-net",
  vlanId: cfg.getNumber("vlanId") ?? 100,
});

export const networkName = network.name;
export const vlanId = network.vlanId;
export const hosts = network.hosts;
export const vswitches = network.hostSwitches;
export const networkId = network.networkId;
