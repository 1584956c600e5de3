// The WSDL-less vim25 envelope layer: what goes out, what comes back, and faults.
import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  DuplicateNameFault,
  FileNotFoundFault,
  InvalidArgumentFault,
  ManagedObjectNotFoundFault,
  ProtocolError,
  VimFault,
  faultFromLocalized,
} from "../../provider/vsphere/errors.js";
import { arrayOf, bool, dataObject, dateTime, int, long, moRef, str } from "../../provider/vsphere/schema.js";
import { buildEnvelope, parseEnvelope } from "../../provider/vsphere/soap/envelope.js";
import { serialize } from "../../provider/vsphere/soap/write.js";
import { MoRef, type VimObject } from "../../provider/vsphere/soap/xml.js";

const ENV = (body: string) =>
  `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ` +
  `xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soapenv:Body>${body}</soapenv:Body></soapenv:Envelope>`;

describe("requests", () => {
  it("writes _this, then the arguments, with xsi:type for polymorphic data", () => {
    const xml = buildEnvelope("ReconfigVM_Task", new MoRef("VirtualMachine", "vm-42"), {
      spec: {
        name: "a&b",
        deviceChange: [
          {
            operation: "add",
            fileOperation: "create",
            device: { $type: "VirtualDisk", key: -1, backing: { $type: "VirtualDiskFlatVer2BackingInfo", fileName: "", thinProvisioned: true } },
          },
        ],
        extraConfig: [{ key: "guestinfo.x", value: { $type: "xsd:string", $value: "<1>" } }],
      },
    });
    expect(xml).toContain(`<ReconfigVM_Task xmlns="urn:vim25"><_this type="VirtualMachine">vm-42</_this><spec><name>a&amp;b</name>`);
    expect(xml).toContain(
      `<deviceChange><operation>add</operation><fileOperation>create</fileOperation><device xsi:type="VirtualDisk"><key>-1</key>` +
        `<backing xsi:type="VirtualDiskFlatVer2BackingInfo"><fileName></fileName><thinProvisioned>true</thinProvisioned></backing></device></deviceChange>`,
    );
    expect(xml).toContain(`<extraConfig><key>guestinfo.x</key><value xsi:type="xsd:string">&lt;1&gt;</value></extraConfig>`);
    expect(xml).toContain(`xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"`);
  });

  it("repeats arrays, writes references with their type, and leaves out undefined", () => {
    expect(serialize("type", ["VirtualMachine", "HostSystem"])).toBe("<type>VirtualMachine</type><type>HostSystem</type>");
    expect(serialize("container", new MoRef("Folder", "group-d1"))).toBe(`<container type="Folder">group-d1</container>`);
    expect(serialize("spec", { a: undefined, b: 0, c: false })).toBe("<spec><b>0</b><c>false</c></spec>");
    expect(() => serialize("n", Number.NaN)).toThrow(/cannot send NaN/);
  });
});

describe("responses", () => {
  it("reads returnval: references, typed arrays, enums, nested data and repeated fields", () => {
    const xml = ENV(
      `<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><token>t1</token>` +
        `<objects><obj type="VirtualMachine">vm-1</obj>` +
        `<propSet><name>name</name><val xsi:type="xsd:string"> spaced &amp; escaped </val></propSet>` +
        `<propSet><name>runtime.powerState</name><val xsi:type="VirtualMachinePowerState">poweredOn</val></propSet>` +
        `<propSet><name>datastore</name><val xsi:type="ArrayOfManagedObjectReference"><ManagedObjectReference type="Datastore">ds-1</ManagedObjectReference></val></propSet>` +
        `<propSet><name>empty</name><val xsi:type="ArrayOfString"/></propSet>` +
        `<propSet><name>summary</name><val xsi:type="DatastoreSummary"><capacity>1099511627776</capacity><accessible>true</accessible></val></propSet>` +
        `</objects></returnval></RetrievePropertiesExResponse>`,
    );
    const out = parseEnvelope(xml, "RetrievePropertiesEx");
    expect(out.ok).toBe(true);
    const ret = (out as { value: VimObject }).value;
    expect(ret.token).toBe("t1");
    const objects = ret.objects as VimObject;
    expect(objects.obj).toEqual(new MoRef("VirtualMachine", "vm-1"));
    const props = Object.fromEntries((objects.propSet as VimObject[]).map((p) => [p.name, p.val]));
    expect(props.name).toBe(" spaced & escaped ");
    expect(props["runtime.powerState"]).toBe("poweredOn");
    expect(props.datastore).toEqual([new MoRef("Datastore", "ds-1")]);
    expect(props.empty).toEqual([]);
    expect(props.summary).toEqual({ $type: "DatastoreSummary", capacity: "1099511627776", accessible: "true" });
  });

  it("reads a method without a returnval as undefined, and a non-envelope as a ProtocolError", () => {
    expect(parseEnvelope(ENV(`<LogoutResponse xmlns="urn:vim25"></LogoutResponse>`), "Logout")).toEqual({ ok: true, value: undefined });
    expect(() => parseEnvelope("<html><body>503 Service Unavailable</body></html>", "Login")).toThrow(ProtocolError);
    expect(() => parseEnvelope(ENV(`<OtherResponse/>`), "Login")).toThrow(/no LoginResponse/);
  });
});

describe("text", () => {
  it("decodes XML's named entities and numeric character references once, and no HTML names", () => {
    const xml = ENV(
      `<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><token>t1</token>` +
        `<objects><obj type="VirtualMachine">vm-1</obj>` +
        `<propSet><name>a</name><val xsi:type="xsd:string">device &#39;0&#39; &#x27;1&#x27; &lt;x&gt; &quot;q&quot; &amp;#39; &nbsp;</val></propSet>` +
        `</objects></returnval></RetrievePropertiesExResponse>`,
    );
    const out = parseEnvelope(xml, "RetrievePropertiesEx") as { ok: true; value: VimObject };
    const prop = ((out.value.objects as VimObject).propSet as VimObject).val;
    expect(prop).toBe(`device '0' '1' <x> "q" &#39; &nbsp;`);
  });
});

describe("faults", () => {
  const fault = (detail: string, msg = "it failed"): { ok: false; fault: VimFault } | { ok: true } =>
    parseEnvelope(
      ENV(`<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>${msg}</faultstring><detail>${detail}</detail></soapenv:Fault>`),
      "M",
    ) as { ok: false; fault: VimFault };

  it("decodes the detail's xsi:type into the typed fault with its fields", () => {
    const out = fault(`<InvalidArgumentFault xmlns="urn:vim25" xsi:type="InvalidArgument"><invalidProperty>spec.name</invalidProperty></InvalidArgumentFault>`);
    expect(out.ok).toBe(false);
    const f = (out as { fault: VimFault }).fault;
    expect(f).toBeInstanceOf(InvalidArgumentFault);
    expect(f.code).toBe("InvalidArgument");
    expect((f as InvalidArgumentFault).invalidProperty).toBe("spec.name");
    expect(f.serverMessage).toBe("it failed");
  });

  it("knows the faults callers handle by type, and keeps any other by name", () => {
    const dup = (fault(`<DuplicateNameFault xmlns="urn:vim25" xsi:type="DuplicateName"><name>web</name><object type="VirtualMachine">vm-9</object></DuplicateNameFault>`) as { fault: VimFault }).fault as DuplicateNameFault;
    expect(dup).toBeInstanceOf(DuplicateNameFault);
    expect(dup.duplicateName).toBe("web");
    expect(dup.object).toEqual(new MoRef("VirtualMachine", "vm-9"));
    const mo = (fault(`<ManagedObjectNotFoundFault xmlns="urn:vim25" xsi:type="ManagedObjectNotFound"><obj type="Datastore">ds-9</obj></ManagedObjectNotFoundFault>`) as { fault: VimFault }).fault as ManagedObjectNotFoundFault;
    expect(mo.obj).toEqual(new MoRef("Datastore", "ds-9"));
    const other = (fault(`<HostConfigFaultFault xmlns="urn:vim25" xsi:type="HostConfigFault"/>`) as { fault: VimFault }).fault;
    expect(other.constructor).toBe(VimFault);
    expect(other.code).toBe("HostConfigFault");
    // No xsi:type: the element name, less its Fault suffix.
    expect((fault(`<NotFoundFault xmlns="urn:vim25"/>`) as { fault: VimFault }).fault.code).toBe("NotFound");
    // No detail at all: the faultcode.
    expect((fault("") as { fault: VimFault }).fault.code).toBe("ServerFaultCode");
  });

  it("decodes a task's LocalizedMethodFault", () => {
    const f = faultFromLocalized({ fault: { $type: "FileNotFound", file: "[ds] a/b.vmdk" }, localizedMessage: "File [ds] a/b.vmdk was not found" });
    expect(f).toBeInstanceOf(FileNotFoundFault);
    expect((f as FileNotFoundFault).file).toBe("[ds] a/b.vmdk");
    expect(f.message).toBe("FileNotFound: File [ds] a/b.vmdk was not found");
  });
});

describe("schema helpers", () => {
  it("turn text into numbers, booleans, dates and arrays", () => {
    const S = z.object({
      n: int,
      big: long,
      yes: bool,
      when: dateTime,
      refs: arrayOf(moRef),
      one: arrayOf(str),
      none: arrayOf(str),
      obj: dataObject({ x: str.optional() }),
    });
    const v = S.parse({
      n: "-1",
      big: "1099511627776",
      yes: "true",
      when: "2026-11-25T08:00:00Z",
      refs: [new MoRef("HostSystem", "host-1")],
      one: "a",
      none: undefined,
      obj: "",
    });
    expect(v).toEqual({
      n: -1,
      big: 1099511627776,
      yes: true,
      when: new Date("2026-11-25T08:00:00Z"),
      refs: [new MoRef("HostSystem", "host-1")],
      one: ["a"],
      none: [],
      obj: {},
    });
    expect(() => int.parse("x")).toThrow();
    expect(() => bool.parse("maybe")).toThrow();
  });

  it("MoRef round-trips through its string form", () => {
    const ref = new MoRef("VirtualMachine", "vm-42");
    expect(MoRef.parse(ref.toString())).toEqual(ref);
    expect(() => MoRef.parse("vm-42")).toThrow(/Type:value/);
  });
});
