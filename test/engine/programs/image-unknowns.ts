// A test program: an Image whose source and osType come from another resource's
// output. With `iu:withDep` that resource (a PortGroup) is new, so at preview the
// Image's source and osType are unknown (they resolve to the same values as without it).
import * as pulumi from "@pulumi/pulumi";
import { Image, PortGroup } from "pulumi-vmware-vcenter";

const cfg = new pulumi.Config("iu");
const source = cfg.require("source");
const dep = cfg.getBoolean("withDep") ? new PortGroup("dep", { name: "iu-dep", vlanId: 5 }) : undefined;
const img = new Image("img", {
  source: dep ? dep.networkId.apply(() => source) : source,
  osType: dep ? dep.networkId.apply(() => "ubuntu64Guest") : "ubuntu64Guest",
});

export const imageId = img.imageId;
