// Requests are written in vim25 schema order whatever order the JS keys were
// added in, base type's fields first; keys the schema does not define are bugs.
import { describe, expect, it } from "vitest";
import { buildEnvelope } from "../../provider/vsphere/soap/envelope.js";
import { serialize } from "../../provider/vsphere/soap/write.js";
import { dataType, methodArgs } from "../../provider/vsphere/soap/vim-schema.js";
import { VIM_METHODS, VIM_TYPES } from "../../provider/vsphere/soap/vim-types.js";
import { MoRef, parseDocument } from "../../provider/vsphere/soap/xml.js";

const NS = new MoRef("HostNetworkSystem", "networkSystem-1");
const body = (xml: string, method: string) => {
  const m = new RegExp(`<${method} xmlns="urn:vim25">(.*)</${method}>`).exec(xml);
  if (!m) throw new Error(`no ${method} in ${xml}`);
  return m[1];
};

describe("schema order", () => {
  it("writes a HostPortGroupSpec given in any key order as name, vlanId, vswitchName, policy", () => {
    const xml = buildEnvelope("AddPortGroup", NS, { portgrp: { vswitchName: "vSwitch0", policy: {}, vlanId: 12, name: "pg" } });
    expect(body(xml, "AddPortGroup")).toBe(
      `<_this type="HostNetworkSystem">networkSystem-1</_this>` +
        `<portgrp><name>pg</name><vlanId>12</vlanId><vswitchName>vSwitch0</vswitchName><policy></policy></portgrp>`,
    );
  });

  it("orders method arguments, and a TraversalSpec's base (SelectionSpec) field before its own", () => {
    const xml = buildEnvelope("RetrievePropertiesEx", new MoRef("PropertyCollector", "propertyCollector"), {
      options: { maxObjects: 100 },
      specSet: [
        {
          reportMissingObjectsInResults: true,
          objectSet: [
            {
              selectSet: [
                {
                  selectSet: [{ name: "toHosts" }],
                  skip: false,
                  path: "view",
                  type: "ContainerView",
                  name: "traverseView",
                  $type: "TraversalSpec",
                },
              ],
              skip: true,
              obj: new MoRef("ContainerView", "session[1]view-1"),
            },
          ],
          propSet: [{ pathSet: ["name", "parent"], type: "HostSystem", all: false }],
        },
      ],
    });
    expect(body(xml, "RetrievePropertiesEx")).toBe(
      `<_this type="PropertyCollector">propertyCollector</_this>` +
        `<specSet>` +
        `<propSet><type>HostSystem</type><all>false</all><pathSet>name</pathSet><pathSet>parent</pathSet></propSet>` +
        `<objectSet><obj type="ContainerView">session[1]view-1</obj><skip>true</skip>` +
        `<selectSet xsi:type="TraversalSpec"><name>traverseView</name><type>ContainerView</type><path>view</path><skip>false</skip>` +
        `<selectSet><name>toHosts</name></selectSet></selectSet></objectSet>` +
        `<reportMissingObjectsInResults>true</reportMissingObjectsInResults>` +
        `</specSet>` +
        `<options><maxObjects>100</maxObjects></options>`,
    );
  });

  it("writes a VirtualMachineConfigSpec's device change and typed backing in schema order", () => {
    const network = new MoRef("Network", "network-7");
    const xml = buildEnvelope("ReconfigVM_Task", new MoRef("VirtualMachine", "vm-42"), {
      spec: {
        extraConfig: [{ value: { $type: "xsd:string", $value: "1" }, key: "guestinfo.x" }],
        deviceChange: [
          {
            device: {
              wakeOnLanEnabled: true,
              addressType: "generated",
              backing: { network, deviceName: "pg", $type: "VirtualEthernetCardNetworkBackingInfo" },
              key: -100,
              $type: "VirtualVmxnet3",
            },
            operation: "add",
          },
        ],
        memoryMB: 2048,
        numCPUs: 2,
        name: "web",
      },
    });
    expect(body(xml, "ReconfigVM_Task")).toBe(
      `<_this type="VirtualMachine">vm-42</_this><spec><name>web</name><numCPUs>2</numCPUs><memoryMB>2048</memoryMB>` +
        `<deviceChange><operation>add</operation><device xsi:type="VirtualVmxnet3"><key>-100</key>` +
        `<backing xsi:type="VirtualEthernetCardNetworkBackingInfo"><deviceName>pg</deviceName><network type="Network">network-7</network></backing>` +
        `<addressType>generated</addressType><wakeOnLanEnabled>true</wakeOnLanEnabled></device></deviceChange>` +
        `<extraConfig><key>guestinfo.x</key><value xsi:type="xsd:string">1</value></extraConfig></spec>`,
    );
    // Well-formed, and the namespaces it uses are declared.
    expect(() => parseDocument(xml)).not.toThrow();
  });

  it("writes a distributed port group spec's VLAN setting by its declared and given types", () => {
    const xml = buildEnvelope("AddDVPortgroup_Task", new MoRef("VmwareDistributedVirtualSwitch", "dvs-1"), {
      spec: [
        {
          type: "ephemeral",
          defaultPortConfig: { vlan: { vlanId: 7, inherited: false, $type: "VmwareDistributedVirtualSwitchVlanIdSpec" }, $type: "VMwareDVSPortSetting" },
          name: "dpg",
        },
      ],
    });
    expect(body(xml, "AddDVPortgroup_Task")).toContain(
      `<spec><name>dpg</name><defaultPortConfig xsi:type="VMwareDVSPortSetting">` +
        `<vlan xsi:type="VmwareDistributedVirtualSwitchVlanIdSpec"><inherited>false</inherited><vlanId>7</vlanId></vlan>` +
        `</defaultPortConfig><type>ephemeral</type></spec>`,
    );
  });

  it("keeps key order for a method the table does not know", () => {
    const xml = buildEnvelope("SomeFutureMethod", NS, { zeta: 1, alpha: { y: "1", x: "2" } });
    expect(body(xml, "SomeFutureMethod")).toBe(`<_this type="HostNetworkSystem">networkSystem-1</_this><zeta>1</zeta><alpha><y>1</y><x>2</x></alpha>`);
  });
});

describe("keys and values the schema does not allow", () => {
  it("names the type, the key and the valid keys of an unknown field", () => {
    expect(() => buildEnvelope("AddPortGroup", NS, { portgrp: { name: "pg", vlan: 5 } })).toThrow(
      new TypeError(`AddPortGroup.portgrp: HostPortGroupSpec has no field "vlan"; valid keys: name, vlanId, vswitchName, policy`),
    );
    expect(() => buildEnvelope("AddPortGroup", NS, { spec: {} })).toThrow(new TypeError(`AddPortGroup: no argument "spec"; valid arguments: portgrp`));
    // Deep in a list, with the path to it; a typed object's own and inherited fields are valid.
    expect(() =>
      buildEnvelope("ReconfigVM_Task", new MoRef("VirtualMachine", "vm-1"), {
        spec: { deviceChange: [{ operation: "add", device: { $type: "VirtualVmxnet3", key: 1, macAddres: "x" } }] },
      }),
    ).toThrow(/^ReconfigVM_Task\.spec\.deviceChange\[0\]\.device: VirtualVmxnet3 has no field "macAddres"; valid keys: key, deviceInfo, .*macAddress/);
  });

  it("says to set $type when a field belongs to a subtype of the declared type", () => {
    expect(() =>
      buildEnvelope("ReconfigVM_Task", new MoRef("VirtualMachine", "vm-1"), { spec: { deviceChange: [{ device: { key: 1, macAddress: "x" } }] } }),
    ).toThrow(/VirtualDevice has no field "macAddress" \(a field of a subtype\? set \$type\)/);
  });

  it("rejects a $type that is unknown or not a subtype of the declared type", () => {
    expect(() => serialize("portgrp", { $type: "HostPortGroupSpecc" }, "HostPortGroupSpec")).toThrow(/unknown vim25 data type "HostPortGroupSpecc"/);
    expect(() => serialize("device", { $type: "HostPortGroupSpec" }, "VirtualDevice")).toThrow(/HostPortGroupSpec is not a VirtualDevice/);
  });

  it("checks references, repetition and primitive kinds against the declared types", () => {
    expect(() => serialize("o", { obj: "vm-1" }, "ObjectSpec")).toThrow(/o\.obj: ManagedObjectReference \(a MoRef\) expected, got a string/);
    expect(() => serialize("p", { name: ["a", "b"] }, "HostPortGroupSpec")).toThrow(/p\.name: takes one xsd:string, got an array/);
    expect(() => serialize("p", { vlanId: 1.5 }, "HostPortGroupSpec")).toThrow(/p\.vlanId: xsd:int expected, got a number \(1\.5\)/);
    expect(() => serialize("p", { policy: "x" }, "HostPortGroupSpec")).toThrow(/p\.policy: HostNetworkPolicy expected/);
    expect(() => serialize("p", { name: new MoRef("Network", "n-1") }, "HostPortGroupSpec")).toThrow(/p\.name: xsd:string expected, got a reference/);
    // A repeated field given one value writes it once.
    expect(serialize("p", { pathSet: "name", type: "VirtualMachine" }, "PropertySpec")).toBe("<p><type>VirtualMachine</type><pathSet>name</pathSet></p>");
  });

  it("types anyType values: strings, booleans and references get xsi:type, numbers must say theirs", () => {
    expect(serialize("o", { key: "a", value: "x" }, "OptionValue")).toBe(`<o><key>a</key><value xsi:type="xsd:string">x</value></o>`);
    expect(serialize("o", { key: "a", value: true }, "OptionValue")).toBe(`<o><key>a</key><value xsi:type="xsd:boolean">true</value></o>`);
    expect(serialize("o", { key: "a", value: new MoRef("Datastore", "ds-1") }, "OptionValue")).toBe(
      `<o><key>a</key><value xsi:type="ManagedObjectReference" type="Datastore">ds-1</value></o>`,
    );
    expect(serialize("o", { key: "a", value: { $type: "xsd:long", $value: 5 } }, "OptionValue")).toBe(`<o><key>a</key><value xsi:type="xsd:long">5</value></o>`);
    expect(serialize("o", { key: "a", value: { $type: "ArrayOfString", string: ["p", "q"] } }, "OptionValue")).toBe(
      `<o><key>a</key><value xsi:type="ArrayOfString"><string>p</string><string>q</string></value></o>`,
    );
    expect(serialize("a", { anyType: ["x", { $type: "xsd:int", $value: 1 }] }, "ArrayOfAnyType")).toBe(
      `<a><anyType xsi:type="xsd:string">x</anyType><anyType xsi:type="xsd:int">1</anyType></a>`,
    );
    expect(() => serialize("o", { key: "a", value: ["x"] }, "OptionValue")).toThrow(/o\.value: an array in an anyType field needs its type/);
    expect(() => serialize("o", { key: "a", value: 5 }, "OptionValue")).toThrow(/o\.value: a number in an anyType field needs its XSD type/);
    expect(() => serialize("o", { key: "a", value: { x: 1 } }, "OptionValue")).toThrow(/o\.value: an object in an anyType field needs \$type/);
  });
});

describe("characters XML 1.0 forbids", () => {
  it("are replaced by U+FFFD in text, attributes and references; tab, LF, CR and paired surrogates stay", () => {
    const bad = "a\u0000b\u0008c\u000Bd\u000Ce\u001Ff\uFFFEg\uFFFFh\uD800i\uDC00j";
    expect(serialize("s", bad)).toBe(`<s>a\uFFFDb\uFFFDc\uFFFDd\uFFFDe\uFFFDf\uFFFDg\uFFFDh\uFFFDi\uFFFDj</s>`);
    expect(serialize("s", "t\tn\nr\r\u{1F600}\u007F\u0085")).toBe("<s>t\tn\nr\r\u{1F600}\u007F\u0085</s>");
    expect(serialize("r", new MoRef("Folder\u0001", "group\u0002"))).toBe(`<r type="Folder\uFFFD">group\uFFFD</r>`);
    const xml = buildEnvelope("Login", new MoRef("SessionManager", "SessionManager"), { userName: "u\u0007", password: "p\u0000w" });
    expect(body(xml, "Login")).toContain(`<userName>u\uFFFD</userName><password>p\uFFFDw</password>`);
  });
});

describe("the generated table", () => {
  it("names only types it defines, and parses for every data type and method", () => {
    const dangling: string[] = [];
    for (const name of Object.keys(VIM_TYPES)) {
      for (const f of dataType(name)!.fields) {
        if (!f.type.startsWith("xsd:") && f.type !== "ManagedObjectReference" && !dataType(f.type)) dangling.push(`${name}.${f.elem}: ${f.type}`);
      }
    }
    for (const name of Object.keys(VIM_METHODS)) {
      for (const f of methodArgs(name)!.fields) {
        if (!f.type.startsWith("xsd:") && f.type !== "ManagedObjectReference" && !dataType(f.type)) dangling.push(`${name}(${f.elem}: ${f.type})`);
      }
    }
    expect(dangling).toEqual([]);
    expect(Object.keys(VIM_TYPES).length).toBeGreaterThan(3000);
    expect(methodArgs("RetrievePropertiesEx")!.fields.map((f) => f.elem)).toEqual(["specSet", "options"]);
    expect(dataType("toString")).toBeUndefined();
    expect(methodArgs("constructor")).toBeUndefined();
  });
});
