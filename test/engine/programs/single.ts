// A test program: one PortGroup whose every input comes from stack config `pg:*`
// (absent keys are left out, so defaults apply), plus `pg:extraKey`/`pg:extraValue`
// to pass an input the resource does not have (a misspelling).
import * as pulumi from "@pulumi/pulumi";
import { PortGroup, type PortGroupArgs } from "pulumi-vmware-vcenter";

const cfg = new pulumi.Config("pg");
const args: Record<string, unknown> = {};
for (const key of ["name", "kind", "switch", "clusterName", "datacenter", "portBinding"]) {
  const v = cfg.get(key);
  if (v !== undefined) args[key] = v;
}
if (cfg.get("vlanId") !== undefined) args.vlanId = cfg.getNumber("vlanId");
if (cfg.get("forceDelete") !== undefined) args.forceDelete = cfg.getBoolean("forceDelete");
if (cfg.get("adopt") !== undefined) args.adopt = cfg.getBoolean("adopt");
const extraKey = cfg.get("extraKey");
const extraValue = cfg.get("extraValue");
if (extraKey) args[extraKey] = extraValue !== undefined && /^\d+$/.test(extraValue) ? Number(extraValue) : extraValue;

const pg = new PortGroup("pg", args as PortGroupArgs);

export const id = pg.id;
export const name = pg.name;
export const vlanId = pg.vlanId;
export const hosts = pg.hosts;
export const hostVlans = pg.hostVlans;
export const datacenter = pg.datacenter;
export const networkId = pg.networkId;
