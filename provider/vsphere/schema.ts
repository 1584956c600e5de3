// zod helpers that turn parsed vim25 values (all text, arrays only where the XML
// repeated an element) into typed values. Each property selection in the driver is
// a zod object keyed by property path: one source for the pathSet, the runtime
// check and the static type.
import { z } from "zod";
import { MoRef } from "./soap/xml.js";

const fromText = (conv: (s: string) => unknown) => (v: unknown) => (typeof v === "string" && v !== "" ? conv(v) : v);

/** xsd:int / xsd:short / xsd:byte. */
export const int = z.preprocess(fromText(Number), z.number().int());
/** xsd:long (byte counts fit a double up to 8 PiB). */
export const long = z.preprocess(fromText(Number), z.number());
/** xsd:double / xsd:float. */
export const double = z.preprocess(fromText(Number), z.number());
/** xsd:boolean. */
export const bool = z.preprocess(
  fromText((s) => (s === "true" || s === "1" ? true : s === "false" || s === "0" ? false : s)),
  z.boolean(),
);
/** xsd:string (an empty element is ""). */
export const str = z.string();
/** xsd:dateTime. */
export const dateTime = z.preprocess(fromText((s) => new Date(s)), z.date());
/** A ManagedObjectReference. */
export const moRef = z.instanceof(MoRef);

/** A repeated field: absent is [], one element is [it]. */
export function arrayOf<T extends z.ZodType>(item: T) {
  return z.preprocess((v) => (v === undefined || v === "" ? [] : Array.isArray(v) ? v : [v]), z.array(item));
}

/** A data object; an empty element (`<options/>`) parses as "" and reads as {}. */
export function dataObject<T extends z.ZodRawShape>(shape: T) {
  return z.preprocess((v) => (v === "" ? {} : v), z.object(shape));
}

/** The property paths a selection schema names, for a PropertySpec's pathSet. */
export function pathsOf(schema: z.ZodObject<z.ZodRawShape>): string[] {
  return Object.keys(schema.shape);
}
