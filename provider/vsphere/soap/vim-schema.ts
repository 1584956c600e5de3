// Reads the generated vim25 tables (vim-types.ts) into field lists the serializer
// walks: each data object's fields in XSD sequence order with its base type's first,
// and each method's arguments after _this. Parsed lazily, one type at a time. The
// few SPBM types and methods (pbm-types.ts) are looked up the same way: their names
// (Pbm*) are not vim25's.
import { PBM_METHODS, PBM_TYPES } from "./pbm-types.js";
import { VIM_METHODS, VIM_TYPES } from "./vim-types.js";

/** One element of a data object or method request. `type` is a vim type name or `xsd:*`. */
export interface FieldDef {
  readonly elem: string;
  readonly type: string;
  readonly repeated: boolean;
}

/** A data object type (or a method's request) with all of its fields, base type's first. */
export interface TypeDef {
  readonly name: string;
  readonly base: string | undefined;
  readonly fields: readonly FieldDef[];
  readonly byElem: ReadonlyMap<string, FieldDef>;
}

export const MOREF = "ManagedObjectReference";
export const ANY = "xsd:anyType";

const CODES: Readonly<Record<string, string>> = {
  "": "xsd:string",
  b: "xsd:boolean",
  i: "xsd:int",
  l: "xsd:long",
  h: "xsd:short",
  y: "xsd:byte",
  f: "xsd:float",
  d: "xsd:double",
  t: "xsd:dateTime",
  a: ANY,
  x: "xsd:base64Binary",
  m: MOREF,
};

const FIELD = /^([^:[\]]+)(?::([^[\]]+))?(\[\])?$/;

function parseField(owner: string, token: string): FieldDef {
  const m = FIELD.exec(token);
  if (!m) throw new Error(`vim-types.ts: ${owner}: bad field "${token}"`);
  const code = m[2] ?? "";
  return { elem: m[1]!, type: CODES[code] ?? code, repeated: m[3] !== undefined };
}

function own(table: Readonly<Record<string, string>>, name: string): string | undefined {
  return Object.hasOwn(table, name) ? table[name] : undefined;
}

function makeDef(name: string, base: string | undefined, fields: FieldDef[]): TypeDef {
  return { name, base, fields, byElem: new Map(fields.map((f) => [f.elem, f])) };
}

const types = new Map<string, TypeDef | null>();

/** The data object type of that name, or undefined when vim25 has none. */
export function dataType(name: string): TypeDef | undefined {
  const hit = types.get(name);
  if (hit !== undefined) return hit ?? undefined;
  const line = own(VIM_TYPES, name) ?? own(PBM_TYPES, name);
  if (line === undefined) {
    types.set(name, null);
    return undefined;
  }
  const tokens = line.split(" ").filter((t) => t !== "");
  let base: string | undefined = name === "DynamicData" ? undefined : "DynamicData";
  if (tokens[0]?.startsWith("<")) base = tokens.shift()!.slice(1) || undefined;
  const inherited = base === undefined ? [] : (dataType(base)?.fields ?? []);
  const def = makeDef(name, base, [...inherited, ...tokens.map((t) => parseField(name, t))]);
  types.set(name, def);
  return def;
}

/** True when `sub` is `base` or derives from it. */
export function isSubtype(sub: string, base: string): boolean {
  for (let t: string | undefined = sub; t !== undefined; t = dataType(t)?.base) {
    if (t === base) return true;
  }
  return false;
}

let bases: Set<string> | undefined;

/** Whether some type derives from `name` (an unknown key may then belong to a subtype). */
export function hasSubtypes(name: string): boolean {
  if (!bases) {
    bases = new Set(["DynamicData"]);
    for (const line of [...Object.values(VIM_TYPES), ...Object.values(PBM_TYPES)]) if (line.length > 1 && line.startsWith("<")) bases.add(line.slice(1).split(" ", 1)[0]!);
  }
  return bases.has(name);
}

const methods = new Map<string, TypeDef | null>();

/** A method's arguments after _this, in order; undefined for a method vim25 does not define. */
export function methodArgs(method: string): TypeDef | undefined {
  const hit = methods.get(method);
  if (hit !== undefined) return hit ?? undefined;
  const line = own(VIM_METHODS, method) ?? own(PBM_METHODS, method);
  const def =
    line === undefined
      ? undefined
      : makeDef(
          method,
          undefined,
          line
            .split(" ")
            .filter((t) => t !== "")
            .map((t) => parseField(method, t)),
        );
  methods.set(method, def ?? null);
  return def;
}
