// vim25 values: references, typed primitives, and responses read without a WSDL.
// Requests are written by write.ts, in schema order.
//
// Responses: every element comes back as a string, a MoRef, an array (for
// xsi:type="ArrayOf...") or a plain object (with `$type` when the server typed it).
// A field repeated in the XML is an array, a field present once is not: callers
// normalise with the zod helpers in ../schema.ts, which also turn text into numbers
// and booleans.
import { XMLParser } from "fast-xml-parser";

/** A reference to a managed object (`<obj type="VirtualMachine">vm-42</obj>`). */
export class MoRef {
  constructor(
    readonly type: string,
    readonly value: string,
  ) {}

  toString(): string {
    return `${this.type}:${this.value}`;
  }

  equals(other: MoRef | undefined): boolean {
    return other !== undefined && other.type === this.type && other.value === this.value;
  }

  /** Parses `Type:value` (as written by toString) back into a reference. */
  static parse(s: string): MoRef {
    const i = s.indexOf(":");
    if (i <= 0 || i === s.length - 1) throw new Error(`not a managed object reference: "${s}" (want Type:value, e.g. VirtualMachine:vm-42)`);
    return new MoRef(s.slice(0, i), s.slice(i + 1));
  }
}

/** A value as parsed from a response. */
export type VimValue = string | MoRef | VimValue[] | VimObject;
export interface VimObject {
  $type?: string;
  [key: string]: VimValue | undefined;
}

/** A primitive with an explicit xsi:type, for anyType fields (e.g. OptionValue.value). */
export interface TypedPrimitive {
  $type: `xsd:${string}`;
  $value: string | number | boolean;
}

const XSI = "http://www.w3.org/2001/XMLSchema-instance";
export const NAMESPACES = {
  soapenv: "http://schemas.xmlsoap.org/soap/envelope/",
  soapenc: "http://schemas.xmlsoap.org/soap/encoding/",
  xsd: "http://www.w3.org/2001/XMLSchema",
  xsi: XSI,
} as const;

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@",
  removeNSPrefix: false,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: false,
  processEntities: true,
  // XML's five named entities and numeric character references (&#39;, &#x27;), which XML
  // requires decoding and vCenter writes in its messages, and no HTML names (&nbsp; stays):
  // the object form of this option names the entities and turns numeric references on
  // (fast-xml-parser 5; its typings know only the boolean; test/vsphere/soap.test.ts pins it).
  htmlEntities: { amp: "&", apos: "'", gt: ">", lt: "<", quot: '"' } as unknown as boolean,
});

type Raw = string | RawObject | Raw[];
interface RawObject {
  [key: string]: Raw;
}

/** Parses a whole document into raw fast-xml-parser form (tag names keep their prefix). */
export function parseDocument(xml: string): Record<string, unknown> {
  return parser.parse(xml) as Record<string, unknown>;
}

function xsiTypeOf(node: RawObject): string | undefined {
  for (const [k, v] of Object.entries(node)) {
    if (k.startsWith("@") && k.endsWith(":type") && typeof v === "string") return v;
  }
  return undefined;
}

function localName(tag: string): string {
  const i = tag.indexOf(":");
  return i < 0 ? tag : tag.slice(i + 1);
}

/** Converts one raw element into a VimValue (see the file comment). */
export function toVim(node: Raw): VimValue {
  if (typeof node === "string") return node;
  if (Array.isArray(node)) return node.map(toVim);
  const xsiType = xsiTypeOf(node);
  const text = typeof node["#text"] === "string" ? node["#text"] : "";
  if (typeof node["@type"] === "string") return new MoRef(node["@type"], text);
  if (xsiType?.startsWith("xsd:")) return text;
  const childKeys = Object.keys(node).filter((k) => !k.startsWith("@") && k !== "#text");
  // A typed leaf (an enum such as VirtualMachinePowerState) is its text.
  if (childKeys.length === 0 && text !== "") return text;
  if (xsiType?.startsWith("ArrayOf")) {
    const items: VimValue[] = [];
    for (const k of childKeys) {
      const v = node[k]!;
      for (const item of Array.isArray(v) ? v : [v]) items.push(toVim(item));
    }
    return items;
  }
  const out: VimObject = {};
  if (xsiType) out.$type = localName(xsiType);
  for (const k of childKeys) out[localName(k)] = toVim(node[k]!);
  return out;
}
