// Specs built with their keys in any order reach a simulator that, like vCenter,
// refuses a request whose elements are out of XSD sequence order (--schema-order
// strict), and do what they say; the same spec sent misordered is refused.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { VimClient } from "../../provider/vsphere/client.js";
import { PropertyCollector } from "../../provider/vsphere/property.js";
import { arrayOf, dataObject, int, moRef, str } from "../../provider/vsphere/schema.js";
import { MoRef } from "../../provider/vsphere/soap/xml.js";
import { runTask } from "../../provider/vsphere/task.js";
import { simOptions } from "../support/clients.js";
import { RawSoap, RawSoapFault, toMoRef } from "../support/raw-soap.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";

let sim: Vcsim;
let client: VimClient;
let networkSystem: MoRef;
let vm: MoRef;
let network: { ref: MoRef; name: string };

beforeAll(async () => {
  sim = await startVcsim({ schemaOrder: "strict", clusters: 1, hosts: 1, vms: 1 });
  client = await VimClient.connect(simOptions(sim));
  const pc = new PropertyCollector(client);
  const [host] = await pc.find(client.serviceContent.rootFolder, "HostSystem", z.object({ "configManager.networkSystem": moRef }));
  networkSystem = host!.props["configManager.networkSystem"];
  const [first] = await pc.find(client.serviceContent.rootFolder, "VirtualMachine", z.object({ name: str }));
  vm = first!.obj;
  const [net] = await pc.find(client.serviceContent.rootFolder, "Network", z.object({ name: str }));
  network = { ref: net!.obj, name: net!.props.name };
});

afterAll(async () => {
  await client?.close();
  await sim?.stop();
});

const PortGroups = z.object({ "networkInfo.portgroup": arrayOf(dataObject({ spec: dataObject({ name: str, vlanId: int }) })) });

describe("a simulator that checks schema order", () => {
  it("refuses a HostPortGroupSpec whose elements are out of order", async () => {
    const raw = new RawSoap(sim.info.url);
    const sc = await raw.serviceContent();
    await raw.login(sc, sim.info.username, sim.info.password);
    const err = await raw
      .call(
        "AddPortGroup",
        networkSystem,
        `<portgrp><vswitchName>vSwitch0</vswitchName><name>pg-raw</name><vlanId>3</vlanId><policy></policy></portgrp>`,
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RawSoapFault);
    expect((err as RawSoapFault).faultName).toBe("InvalidRequest");
    expect((err as RawSoapFault).message).toMatch(/name/);
    await raw.call("Logout", toMoRef(sc.sessionManager));
  });

  it("takes the same spec from the client, given in any key order, and adds the port group", async () => {
    await client.invoke("AddPortGroup", networkSystem, { portgrp: { policy: {}, vswitchName: "vSwitch0", vlanId: 3, name: "pg-ordered" } });
    const props = await new PropertyCollector(client).get(networkSystem, PortGroups);
    expect(props["networkInfo.portgroup"].map((p) => p.spec)).toContainEqual({ name: "pg-ordered", vlanId: 3 });
  });

  it("takes a PropertyFilterSpec with a TraversalSpec given in any key order", async () => {
    const view = await new PropertyCollector(client).createContainerView(client.serviceContent.rootFolder, ["VirtualMachine"], true);
    const ret = await client.invoke("RetrievePropertiesEx", client.serviceContent.propertyCollector, {
      options: { maxObjects: 10 },
      specSet: [
        {
          objectSet: [{ selectSet: [{ skip: false, path: "view", type: "ContainerView", name: "v", $type: "TraversalSpec" }], skip: true, obj: view }],
          propSet: [{ pathSet: ["name"], type: "VirtualMachine" }],
        },
      ],
    });
    const objects = dataObject({ objects: arrayOf(dataObject({ obj: moRef })) }).parse(ret).objects;
    expect(objects.map((o) => o.obj)).toContainEqual(vm);
    await client.invoke("DestroyView", view);
  });

  it("takes a VirtualMachineConfigSpec adding a NIC, nested specs in any key order", async () => {
    await runTask(client, "ReconfigVM_Task", vm, {
      spec: {
        extraConfig: [{ value: { $type: "xsd:string", $value: "yes" }, key: "guestinfo.ordered" }],
        deviceChange: [
          {
            device: {
              addressType: "generated",
              connectable: { connected: false, allowGuestControl: true, startConnected: true },
              backing: { network: network.ref, deviceName: network.name, $type: "VirtualEthernetCardNetworkBackingInfo" },
              key: -1,
              $type: "VirtualVmxnet3",
            },
            operation: "add",
          },
        ],
        annotation: "ordered",
      },
    });
    const got = await new PropertyCollector(client).get(vm, z.object({ "config.annotation": str, "config.hardware.device": arrayOf(dataObject({ $type: str.optional() })) }));
    expect(got["config.annotation"]).toBe("ordered");
    expect(got["config.hardware.device"].map((d) => d.$type)).toContain("VirtualVmxnet3");
  });
});
