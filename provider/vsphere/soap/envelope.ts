// SOAP 1.1 envelopes for vim25: one method call in, its returnval or a typed fault out.
import { ProtocolError, VimFault, vimFault } from "../errors.js";
import { methodArgs } from "./vim-schema.js";
import { escapeXml, serialize, writeField } from "./write.js";
import { MoRef, NAMESPACES, parseDocument, toVim, type VimObject, type VimValue } from "./xml.js";

/** Method arguments by name; written in the method's schema order, whatever the key order. */
export type MethodArgs = Record<string, unknown>;

/** Where an envelope goes when not to vim25: another service's namespace and SOAP header elements. */
export interface EnvelopeTarget {
  /** The body's namespace (default urn:vim25). */
  namespace?: string | undefined;
  /** `<soapenv:Header>` elements by name, as text (e.g. SPBM's vcSessionCookie). */
  header?: Readonly<Record<string, string>> | undefined;
}

/**
 * Builds the request envelope for `method` on `self`. A method the vim25 table
 * lacks (none today; a newer API's, say) has its arguments written in key order.
 */
export function buildEnvelope(method: string, self: MoRef, args: MethodArgs = {}, target: EnvelopeTarget = {}): string {
  let body = serialize("_this", self, "ManagedObjectReference");
  const def = methodArgs(method);
  if (def) {
    for (const key of Object.keys(args)) {
      if (!def.byElem.has(key)) {
        throw new TypeError(`${method}: no argument "${key}"; valid arguments: ${def.fields.map((f) => f.elem).join(", ") || "none"}`);
      }
    }
    for (const f of def.fields) body += writeField(method, f, args[f.elem]);
  } else {
    for (const [name, value] of Object.entries(args)) body += serialize(name, value);
  }
  const headers = Object.entries(target.header ?? {});
  const header = headers.length === 0 ? "" : `<soapenv:Header>${headers.map(([k, v]) => serialize(k, v, "xsd:string")).join("")}</soapenv:Header>`;
  return (
    `<?xml version="1.0" encoding="UTF-8"?>` +
    `<soapenv:Envelope xmlns:soapenc="${NAMESPACES.soapenc}" xmlns:soapenv="${NAMESPACES.soapenv}" ` +
    `xmlns:xsd="${NAMESPACES.xsd}" xmlns:xsi="${NAMESPACES.xsi}">` +
    `${header}<soapenv:Body><${method} xmlns="${escapeXml(target.namespace ?? "urn:vim25")}">${body}</${method}></soapenv:Body></soapenv:Envelope>`
  );
}

function findChild(node: unknown, local: string): unknown {
  if (typeof node !== "object" || node === null) return undefined;
  for (const [k, v] of Object.entries(node)) {
    if (k === local || k.endsWith(`:${local}`)) return v;
  }
  return undefined;
}

/** What a response envelope held: the method's returnval, or a fault. */
export type SoapOutcome = { ok: true; value: VimValue | undefined } | { ok: false; fault: VimFault };

/**
 * Parses a response envelope. Throws ProtocolError when the text is not a SOAP
 * envelope at all (an HTML error page, say).
 */
export function parseEnvelope(xml: string, method: string): SoapOutcome {
  let doc: Record<string, unknown>;
  try {
    doc = parseDocument(xml);
  } catch (err) {
    throw new ProtocolError(`${method}: the answer is not XML (${(err as Error).message})`);
  }
  const body = findChild(findChild(doc, "Envelope"), "Body");
  if (body === undefined) throw new ProtocolError(`${method}: the answer is not a SOAP envelope: ${xml.slice(0, 200)}`);

  const fault = findChild(body, "Fault");
  if (fault !== undefined) return { ok: false, fault: decodeSoapFault(fault) };

  const response = findChild(body, `${method}Response`);
  if (response === undefined) throw new ProtocolError(`${method}: the answer has no ${method}Response`);
  if (typeof response !== "object" || response === null) return { ok: true, value: undefined };
  const ret = findChild(response, "returnval");
  return { ok: true, value: ret === undefined ? undefined : toVim(ret as never) };
}

/** faultcode/faultstring/detail -> the typed fault named by the detail's xsi:type. */
function decodeSoapFault(fault: unknown): VimFault {
  const faultstring = findChild(fault, "faultstring");
  const message = typeof faultstring === "string" ? faultstring : "";
  const detail = findChild(fault, "detail");
  if (typeof detail === "object" && detail !== null) {
    for (const [tag, raw] of Object.entries(detail)) {
      if (tag.startsWith("@") || tag === "#text") continue;
      const value = toVim(raw as never);
      const obj: VimObject = typeof value === "object" && !Array.isArray(value) && !(value instanceof MoRef) ? value : {};
      const local = tag.includes(":") ? tag.slice(tag.indexOf(":") + 1) : tag;
      const name = obj.$type ?? local.replace(/Fault$/, "");
      return vimFault(name, message, obj);
    }
  }
  // No detail: a plain SOAP fault (e.g. a malformed request), kept by its faultcode.
  const code = findChild(fault, "faultcode");
  return vimFault(typeof code === "string" && code ? code.replace(/^.*:/, "") : "SoapFault", message);
}
