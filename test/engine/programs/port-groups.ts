// A test program: port groups whose inputs come from stack config `pgtest:*`, so a
// second `up` can change them.
import * as pulumi from "@pulumi/pulumi";
import { PortGroup } from "pulumi-vmware-vcenter";

const cfg = new pulumi.Config("pgtest");
const standard = new PortGroup("standard", {
  ...(cfg.getBoolean("defaultName") ? {} : { name: cfg.get("name") ?? "pg-standard" }),
  vlanId: cfg.getNumber("vlanId") ?? 100,
  ...(cfg.get("switch") ? { switch: cfg.get("switch") } : {}),
  ...(cfg.getBoolean("forceDelete") !== undefined ? { forceDelete: cfg.getBoolean("forceDelete") } : {}),
});
const distributed = cfg.getBoolean("distributed")
  ? new PortGroup("distributed", {
      kind: "distributed",
      switch: cfg.get("dvs") ?? "DVS0",
      name: cfg.get("dvName") ?? "pg-distributed",
      vlanId: cfg.getNumber("dvVlanId") ?? 200,
      ...(cfg.get("dvDatacenter") ? { datacenter: cfg.get("dvDatacenter") } : {}),
      ...(cfg.get("dvBinding") ? { portBinding: cfg.get("dvBinding") as "ephemeral" | "static" } : {}),
    })
  : undefined;

export const standardHosts = standard.hosts;
export const standardVlan = standard.vlanId;
export const standardNetwork = standard.networkId;
export const standardHostVlans = standard.hostVlans;
export const distributedNetwork = distributed?.networkId;
export const distributedDatacenter = distributed?.datacenter;
