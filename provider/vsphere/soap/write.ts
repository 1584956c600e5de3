// Requests as vCenter reads them. vim25 data objects are XSD sequences: vCenter's
// deserializer wants each object's elements in schema order (base type's fields
// first) and rejects elements its type does not define. So a value is written by
// its type, from the generated table (vim-types.ts), whatever order the JS keys
// were added in:
// - the type is `$type` when given (then written as xsi:type, for polymorphic data
//   such as device backings), else the declared type of the field;
// - a key the type does not define throws a TypeError naming the type, the key and
//   the valid keys: a misspelled or misplaced field is a bug in the caller;
// - MoRef instances are typed references, `{ $type: "xsd:int", $value }` a typed
//   primitive (for anyType fields), arrays repeat their element;
// - a value with no known type (an argument of a method the table lacks) is written
//   as before: keys in insertion order.
// Characters XML 1.0 forbids are sent as U+FFFD: vCenter would reject the request.
import { ANY, MOREF, dataType, hasSubtypes, isSubtype, type FieldDef, type TypeDef } from "./vim-schema.js";
import { MoRef, type TypedPrimitive } from "./xml.js";

// C0 controls but tab, LF and CR; U+FFFE/U+FFFF; with the u flag a surrogate
// matches only when it is not half of a pair.
const FORBIDDEN = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF\uD800-\uDFFF]/gu;

export function escapeXml(s: string): string {
  return s
    .replace(FORBIDDEN, "\uFFFD")
    .replace(/[&<>"']/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : c === '"' ? "&quot;" : "&apos;"));
}

function isTypedPrimitive(v: object): v is TypedPrimitive {
  return "$value" in v && typeof (v as { $type?: unknown }).$type === "string";
}

const INTEGER = new Set(["xsd:int", "xsd:long", "xsd:short", "xsd:byte"]);
const isData = (type: string | undefined): type is string => type !== undefined && type !== MOREF && !type.startsWith("xsd:");

function describe(value: unknown): string {
  if (value instanceof MoRef) return `a reference (${value})`;
  if (Array.isArray(value)) return "an array";
  if (value instanceof Date) return "a Date";
  return typeof value === "object" ? "an object" : `a ${typeof value} (${String(value)})`;
}

function mismatch(path: string, type: string, value: unknown): TypeError {
  return new TypeError(`${path}: ${type} expected, got ${describe(value)}`);
}

/** A JS primitive's text for a field declared `type` (undefined: untyped, as given). */
function primitiveText(path: string, type: string | undefined, value: string | number | bigint | boolean): string {
  if (typeof value === "number" && !Number.isFinite(value)) throw new TypeError(`${path}: cannot send ${value}`);
  if (type === undefined || type === "xsd:string" || type === ANY) return String(value);
  if (INTEGER.has(type)) {
    if (typeof value === "bigint" || (typeof value === "number" && Number.isInteger(value))) return String(value);
    if (typeof value === "string" && /^-?\d+$/.test(value)) return value;
  } else if (type === "xsd:boolean") {
    if (typeof value === "boolean" || value === "true" || value === "false") return String(value);
  } else if (type === "xsd:float" || type === "xsd:double") {
    if (typeof value === "number" || (typeof value === "string" && value.trim() !== "" && Number.isFinite(Number(value)))) return String(value);
  } else if (type === "xsd:dateTime" || type === "xsd:base64Binary") {
    if (typeof value === "string") return value;
  }
  throw mismatch(path, type, value);
}

/** The xsi:type an untyped JS primitive gets in an anyType field. */
function anyTypeOf(path: string, value: string | number | bigint | boolean): string {
  if (typeof value === "string") return "xsd:string";
  if (typeof value === "boolean") return "xsd:boolean";
  throw new TypeError(`${path}: a number in an anyType field needs its XSD type: give { $type: "xsd:int" (or "xsd:long"...), $value: ${String(value)} }`);
}

function writeFields(path: string, def: TypeDef, obj: Record<string, unknown>, abstractHint: boolean): string {
  for (const key of Object.keys(obj)) {
    if (key === "$type" || def.byElem.has(key)) continue;
    const valid = def.fields.map((f) => f.elem).join(", ") || "none";
    const hint = abstractHint ? ` (a field of a subtype? set $type)` : "";
    throw new TypeError(`${path}: ${def.name} has no field "${key}"${hint}; valid keys: ${valid}`);
  }
  let inner = "";
  for (const f of def.fields) inner += writeField(path, f, obj[f.elem]);
  return inner;
}

/** Writes one field of a typed object or request, checking it repeats only if it may. */
export function writeField(path: string, f: FieldDef, value: unknown): string {
  const here = `${path}.${f.elem}`;
  if (!Array.isArray(value)) return write(f.elem, value, f.type, here);
  if (f.repeated) return value.map((v, i) => write(f.elem, v, f.type, `${here}[${i}]`)).join("");
  if (f.type === ANY) throw new TypeError(`${here}: an array in an anyType field needs its type: give { $type: "ArrayOf...", ... }`);
  throw new TypeError(`${here}: takes one ${f.type}, got an array`);
}

/**
 * Writes `value` as element `tag`. `type` is the declared vim type (a data object
 * name, ManagedObjectReference, or xsd:*); undefined writes an untyped value in key
 * order (a typed `$type` object is still written by its type).
 */
function write(tag: string, value: unknown, type: string | undefined, path: string): string {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value)) {
    if (type === ANY) throw new TypeError(`${path}: an array in an anyType field needs its type: give { $type: "ArrayOf...", ... }`);
    return value.map((v, i) => write(tag, v, type, `${path}[${i}]`)).join("");
  }
  if (value instanceof MoRef) {
    if (type !== undefined && type !== MOREF && type !== ANY) throw mismatch(path, type, value);
    const xsi = type === ANY ? ` xsi:type="${MOREF}"` : "";
    return `<${tag}${xsi} type="${escapeXml(value.type)}">${escapeXml(value.value)}</${tag}>`;
  }
  if (type === MOREF) throw mismatch(path, `${MOREF} (a MoRef)`, value);
  if (value instanceof Date) {
    if (type !== undefined && type !== "xsd:dateTime" && type !== ANY) throw mismatch(path, type, value);
    const xsi = type === ANY ? ` xsi:type="xsd:dateTime"` : "";
    return `<${tag}${xsi}>${value.toISOString()}</${tag}>`;
  }
  if (value instanceof Uint8Array) {
    if (type !== undefined && type !== "xsd:base64Binary" && type !== ANY) throw mismatch(path, type, value);
    const xsi = type === ANY ? ` xsi:type="xsd:base64Binary"` : "";
    return `<${tag}${xsi}>${Buffer.from(value).toString("base64")}</${tag}>`;
  }
  switch (typeof value) {
    case "string":
    case "number":
    case "bigint":
    case "boolean": {
      if (isData(type)) throw mismatch(path, type, value);
      const xsi = type === ANY ? ` xsi:type="${anyTypeOf(path, value)}"` : "";
      return `<${tag}${xsi}>${escapeXml(primitiveText(path, type, value))}</${tag}>`;
    }
    case "object":
      return writeObject(tag, value, type, path);
    default:
      throw new TypeError(`${path}: cannot send a ${typeof value}`);
  }
}

function writeObject(tag: string, value: object, type: string | undefined, path: string): string {
  if (isTypedPrimitive(value)) {
    if (type !== undefined && type !== ANY && type !== value.$type) throw mismatch(path, type, value);
    return `<${tag} xsi:type="${escapeXml(value.$type)}">${escapeXml(String(value.$value))}</${tag}>`;
  }
  const obj = value as Record<string, unknown>;
  const given = obj.$type;
  if (given !== undefined && typeof given !== "string") throw new TypeError(`${path}: $type must be a vim type name, got ${describe(given)}`);
  if (type !== undefined && type !== ANY && !isData(type)) throw mismatch(path, type, value);

  if (given !== undefined) {
    const def = dataType(given);
    if (!def) throw new TypeError(`${path}: unknown vim25 data type "${given}" in $type`);
    if (isData(type) && !isSubtype(given, type)) throw new TypeError(`${path}: ${given} is not a ${type}`);
    return `<${tag} xsi:type="${escapeXml(given)}">${writeFields(path, def, obj, false)}</${tag}>`;
  }
  if (type === ANY) throw new TypeError(`${path}: an object in an anyType field needs $type`);
  if (type === undefined) {
    // No schema for this value: insertion order, as given.
    let inner = "";
    for (const [k, v] of Object.entries(obj)) inner += write(k, v, undefined, `${path}.${k}`);
    return `<${tag}>${inner}</${tag}>`;
  }
  const def = dataType(type);
  if (!def) throw new TypeError(`${path}: unknown vim25 data type "${type}"`);
  return `<${tag}>${writeFields(path, def, obj, hasSubtypes(type))}</${tag}>`;
}

/** Writes one value as element `tag`; `type` (a vim type name or xsd:*) orders and checks it. */
export function serialize(tag: string, value: unknown, type?: string): string {
  return write(tag, value, type, tag);
}
