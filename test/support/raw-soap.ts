// A deliberately tiny, independent vim25 client for testing the test harness
// itself (the simulator and its fault injection), so those tests do not depend on
// the driver under test. Hand-written envelopes, fast-xml-parser on the way back.
import { XMLParser } from "fast-xml-parser";
import { Agent, request, type Dispatcher } from "undici";

export interface MoRef {
  type: string;
  value: string;
}

export class RawSoapFault extends Error {
  constructor(
    readonly faultName: string,
    message: string,
    readonly detail: Record<string, unknown>,
    readonly status: number,
  ) {
    super(`${faultName}: ${message}`);
  }
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "@_",
  removeNSPrefix: true,
  parseTagValue: false,
  textNodeName: "#text",
});

export function xmlEscape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

export function moRefXml(tag: string, ref: MoRef): string {
  return `<${tag} type="${ref.type}">${xmlEscape(ref.value)}</${tag}>`;
}

export type Parsed = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Reads a ManagedObjectReference as fast-xml-parser renders it. */
export function toMoRef(node: Parsed): MoRef {
  return { type: String(node["@_type"]), value: String(node["#text"]) };
}

/** A simple typed value (`<val xsi:type="xsd:string">x</val>`) as its text. */
function unwrap(val: Parsed | string): Parsed | string {
  if (typeof val === "object" && val !== null && "#text" in val && String(val["@_type"] ?? "").startsWith("xsd:")) {
    return String(val["#text"]);
  }
  return val;
}

export function asArray<T>(v: T | T[] | undefined): T[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

export class RawSoap {
  cookie: string | undefined;

  constructor(
    readonly url: string,
    readonly dispatcher: Dispatcher = new Agent(),
  ) {}

  /** Calls one method; returns the parsed `returnval` (or undefined) or throws RawSoapFault. */
  async call(method: string, self: MoRef, inner = ""): Promise<Parsed | undefined> {
    const envelope =
      `<?xml version="1.0" encoding="UTF-8"?>` +
      `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ` +
      `xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">` +
      `<soapenv:Body><${method} xmlns="urn:vim25">${moRefXml("_this", self)}${inner}</${method}>` +
      `</soapenv:Body></soapenv:Envelope>`;
    const res = await request(this.url, {
      method: "POST",
      dispatcher: this.dispatcher,
      headers: {
        "content-type": "text/xml; charset=utf-8",
        soapaction: "urn:vim25/6.5",
        ...(this.cookie ? { cookie: this.cookie } : {}),
      },
      body: envelope,
    });
    const setCookie = res.headers["set-cookie"];
    for (const c of asArray(setCookie)) {
      const pair = String(c).split(";")[0];
      if (pair?.startsWith("vmware_soap_session=")) this.cookie = pair;
    }
    const text = await res.body.text();
    if (!text.trimStart().startsWith("<")) {
      throw new RawSoapFault(`HTTP${res.statusCode}`, text.trim(), {}, res.statusCode);
    }
    const body = parser.parse(text)?.Envelope?.Body as Parsed;
    if (body?.Fault) {
      const detail = (body.Fault.detail ?? {}) as Parsed;
      const [key] = Object.keys(detail);
      const node = (key ? detail[key] : {}) as Parsed;
      const name = String(node["@_type"] ?? key?.replace(/Fault$/, "") ?? "Unknown");
      throw new RawSoapFault(name, String(body.Fault.faultstring ?? ""), node, res.statusCode);
    }
    return (body?.[`${method}Response`] as Parsed | undefined)?.returnval as Parsed | undefined;
  }

  async serviceContent(): Promise<Parsed> {
    const sc = await this.call("RetrieveServiceContent", { type: "ServiceInstance", value: "ServiceInstance" });
    if (!sc) throw new Error("RetrieveServiceContent returned nothing");
    return sc;
  }

  async login(sc: Parsed, username: string, password: string): Promise<Parsed | undefined> {
    return this.call(
      "Login",
      toMoRef(sc.sessionManager),
      `<userName>${xmlEscape(username)}</userName><password>${xmlEscape(password)}</password>`,
    );
  }

  /**
   * Every object of `type` under the root folder with the given properties,
   * paging with maxObjects through ContinueRetrievePropertiesEx.
   */
  async retrieveAll(sc: Parsed, type: string, paths: string[], maxObjects = 100): Promise<Parsed[]> {
    const view = await this.call(
      "CreateContainerView",
      toMoRef(sc.viewManager),
      `${moRefXml("container", toMoRef(sc.rootFolder))}<type>${type}</type><recursive>true</recursive>`,
    );
    if (!view) throw new Error("CreateContainerView returned nothing");
    const viewRef = toMoRef(view);
    const pc = toMoRef(sc.propertyCollector);
    const spec =
      `<specSet><propSet><type>${type}</type>${paths.map((p) => `<pathSet>${p}</pathSet>`).join("")}</propSet>` +
      `<objectSet>${moRefXml("obj", viewRef)}<skip>true</skip>` +
      `<selectSet xsi:type="TraversalSpec"><name>view</name><type>ContainerView</type><path>view</path><skip>false</skip></selectSet>` +
      `</objectSet></specSet>`;
    const out: Parsed[] = [];
    let result = await this.call("RetrievePropertiesEx", pc, `${spec}<options><maxObjects>${maxObjects}</maxObjects></options>`);
    for (;;) {
      for (const o of asArray(result?.objects as Parsed | Parsed[] | undefined)) {
        const props: Parsed = { obj: toMoRef(o.obj) };
        for (const p of asArray(o.propSet as Parsed | Parsed[] | undefined)) props[String(p.name)] = unwrap(p.val);
        out.push(props);
      }
      const token = result?.token as string | undefined;
      if (!token) break;
      result = await this.call("ContinueRetrievePropertiesEx", pc, `<token>${xmlEscape(String(token))}</token>`);
    }
    await this.call("DestroyView", viewRef);
    return out;
  }

  /** One object's properties. */
  async properties(sc: Parsed, obj: MoRef, paths: string[]): Promise<Parsed> {
    const spec =
      `<specSet><propSet><type>${obj.type}</type>${paths.map((p) => `<pathSet>${p}</pathSet>`).join("")}</propSet>` +
      `<objectSet>${moRefXml("obj", obj)}</objectSet></specSet>`;
    const result = await this.call("RetrievePropertiesEx", toMoRef(sc.propertyCollector), `${spec}<options/>`);
    const props: Parsed = {};
    const [first] = asArray(result?.objects as Parsed | Parsed[] | undefined);
    for (const p of asArray(first?.propSet as Parsed | Parsed[] | undefined)) props[String(p.name)] = unwrap(p.val);
    return props;
  }
}
