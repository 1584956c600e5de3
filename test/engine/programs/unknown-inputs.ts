// A test program: the "target" PortGroup's name and VLAN come from another
// resource's output. With `ui:withSource` the source PortGroup is new, so at
// preview its networkId is unknown, and so are the target's name and VLAN (they
// resolve to the same values as without it).
import * as pulumi from "@pulumi/pulumi";
import { PortGroup } from "pulumi-vmware-vcenter";

const cfg = new pulumi.Config("ui");
const source = cfg.getBoolean("withSource") ? new PortGroup("source", { name: cfg.require("sourceName"), vlanId: 20 }) : undefined;
const targetName = cfg.require("targetName");
const targetVlan = cfg.requireNumber("targetVlan");
const target = new PortGroup("target", {
  name: source ? source.networkId.apply(() => targetName) : targetName,
  vlanId: source ? source.networkId.apply(() => targetVlan) : targetVlan,
});

export const targetId = target.id;
export const targetNetwork = target.networkId;
