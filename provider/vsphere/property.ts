// The property collector: typed property selection, RetrievePropertiesEx paged by
// maximum_objects, ContainerView traversal, and WaitForUpdatesEx.
import { z } from "zod";
import type { VimClient } from "./client.js";
import { ManagedObjectNotFoundFault, ProtocolError, VimFault, faultFromLocalized } from "./errors.js";
import { arrayOf, dataObject, moRef, pathsOf, str } from "./schema.js";
import { MoRef, type VimValue } from "./soap/xml.js";

/** A property selection: a zod object keyed by property path (e.g. "summary.freeSpace"). */
export type Selection = z.ZodObject<z.ZodRawShape>;

/** One object with its selected properties, typed by the selection. */
export interface Retrieved<S extends Selection> {
  obj: MoRef;
  props: z.infer<S>;
}

const ObjectContent = dataObject({
  obj: moRef,
  propSet: arrayOf(dataObject({ name: str, val: z.unknown().optional() })),
  missingSet: arrayOf(dataObject({ path: str, fault: z.unknown().optional() })),
});
const RetrieveResult = dataObject({ token: str.optional(), objects: arrayOf(ObjectContent) });

/** Raw object content: property path -> parsed value, plus paths the server could not read. */
export interface RawObjectContent {
  obj: MoRef;
  props: Record<string, VimValue>;
  missing: Array<{ path: string; fault: VimFault }>;
}

export interface ObjectSpec {
  obj: MoRef;
  skip?: boolean;
  selectSet?: unknown[];
}
export interface PropertySpec {
  type: string;
  all?: boolean;
  pathSet?: string[];
}
/**
 * Reads of other objects to make in the same round trip as some look-up (a datastore
 * choice, a datacenter look-up): `reads` holds what they returned once it is done.
 */
export interface Alongside {
  specs: PropertyFilterSpec[];
  reads?: RawObjectContent[];
}

export interface PropertyFilterSpec {
  propSet: PropertySpec[];
  objectSet: ObjectSpec[];
  /** Report objects that do not exist in missingSet instead of failing the call. */
  reportMissingObjectsInResults?: boolean;
}

/** The traversal from a ContainerView to the objects in it. */
export function containerViewObjectSpec(view: MoRef): ObjectSpec {
  return {
    obj: view,
    skip: true,
    selectSet: [{ $type: "TraversalSpec", name: "traverseView", type: "ContainerView", path: "view", skip: false }],
  };
}

/** Serialises a filter spec with vim25's element order. */
function filterSpecArg(spec: PropertyFilterSpec): Record<string, unknown> {
  return {
    propSet: spec.propSet.map((p) => ({ type: p.type, all: p.all, pathSet: p.pathSet })),
    objectSet: spec.objectSet.map((o) => ({ obj: o.obj, skip: o.skip, selectSet: o.selectSet })),
    reportMissingObjectsInResults: spec.reportMissingObjectsInResults,
  };
}

function toRaw(content: z.infer<typeof ObjectContent>): RawObjectContent {
  const props: Record<string, VimValue> = {};
  for (const p of content.propSet) props[p.name] = p.val as VimValue;
  return {
    obj: content.obj,
    props,
    missing: content.missingSet.map((m) => ({ path: m.path, fault: faultFromLocalized(m.fault as VimValue) })),
  };
}

/** Reads properties with the session's PropertyCollector. */
export class PropertyCollector {
  constructor(readonly client: VimClient) {}

  private get collector(): MoRef {
    return this.client.serviceContent.propertyCollector;
  }

  /**
   * RetrievePropertiesEx, then ContinueRetrievePropertiesEx until the token runs
   * out: all objects, `maxObjects` (default maximum_objects) per round trip.
   */
  async retrieve(specs: PropertyFilterSpec[], maxObjects = this.client.options.maximumObjects): Promise<RawObjectContent[]> {
    const out: RawObjectContent[] = [];
    let page = RetrieveResult.parse(
      (await this.client.invoke("RetrievePropertiesEx", this.collector, {
        specSet: specs.map(filterSpecArg),
        options: { maxObjects },
      })) ?? {},
    );
    for (;;) {
      for (const o of page.objects) out.push(toRaw(o));
      if (!page.token) return out;
      page = RetrieveResult.parse((await this.client.invoke("ContinueRetrievePropertiesEx", this.collector, { token: page.token })) ?? {});
    }
  }

  /**
   * The selected properties of one object. Throws ManagedObjectNotFoundFault when
   * it does not exist.
   */
  async get<S extends Selection>(obj: MoRef, selection: S): Promise<z.infer<S>> {
    const [first] = await this.retrieve([{ propSet: [{ type: obj.type, pathSet: pathsOf(selection) }], objectSet: [{ obj }] }], 1);
    if (!first) throw new ManagedObjectNotFoundFault("ManagedObjectNotFound", `${obj.type} ${obj.value} does not exist`, { obj });
    return parseSelection(selection, first, obj);
  }

  /** The selected properties of several objects of one type (missing ones are left out). */
  async getMany<S extends Selection>(objs: MoRef[], selection: S): Promise<Array<Retrieved<S>>> {
    if (objs.length === 0) return [];
    const type = objs[0]!.type;
    const contents = await this.retrieve([
      { propSet: [{ type, pathSet: pathsOf(selection) }], objectSet: objs.map((obj) => ({ obj })), reportMissingObjectsInResults: true },
    ]);
    return contents
      .filter((c) => !c.missing.some((m) => m.fault instanceof ManagedObjectNotFoundFault))
      .map((c) => ({ obj: c.obj, props: parseSelection(selection, c, c.obj) }));
  }

  /**
   * Every object of `type` below `container` (recursively by default), through a
   * ContainerView that is destroyed afterwards.
   */
  async find<S extends Selection>(container: MoRef, type: string, selection: S, opts: { recursive?: boolean; maxObjects?: number } = {}): Promise<Array<Retrieved<S>>> {
    const view = await this.createContainerView(container, [type], opts.recursive ?? true);
    try {
      const contents = await this.retrieve(
        [{ propSet: [{ type, pathSet: pathsOf(selection) }], objectSet: [containerViewObjectSpec(view)] }],
        opts.maxObjects,
      );
      return contents.map((c) => ({ obj: c.obj, props: parseSelection(selection, c, c.obj) }));
    } finally {
      await this.client.invoke("DestroyView", view).catch(() => {});
    }
  }

  async createContainerView(container: MoRef, types: string[], recursive: boolean): Promise<MoRef> {
    const viewManager = this.client.serviceContent.viewManager;
    if (!viewManager) throw new ProtocolError(`${this.client.endpoint} has no ViewManager`);
    return moRef.parse(await this.client.invoke("CreateContainerView", viewManager, { container, type: types, recursive }));
  }
}

function parseSelection<S extends Selection>(selection: S, content: RawObjectContent, obj: MoRef): z.infer<S> {
  const result = selection.safeParse(content.props);
  if (!result.success) {
    const missing = content.missing.map((m) => `${m.path} (${m.fault.code})`).join(", ");
    throw new ProtocolError(
      `${obj.type} ${obj.value}: unexpected properties: ${z.prettifyError(result.error)}${missing ? `; unreadable: ${missing}` : ""}`,
    );
  }
  return result.data as z.infer<S>;
}

const PropertyChange = dataObject({ name: str, op: str, val: z.unknown().optional() });
const UpdateSet = dataObject({
  version: str,
  truncated: z.unknown().optional(),
  filterSet: arrayOf(
    dataObject({
      filter: moRef,
      objectSet: arrayOf(dataObject({ kind: str, obj: moRef, changeSet: arrayOf(PropertyChange) })),
    }),
  ),
});

/**
 * A private PropertyCollector for WaitForUpdatesEx: updates from it belong to its
 * own filters only, so concurrent waiters never take each other's updates.
 */
export class UpdateWaiter {
  private version = "";

  private constructor(
    readonly client: VimClient,
    readonly collector: MoRef,
  ) {}

  static async create(client: VimClient): Promise<UpdateWaiter> {
    const ref = moRef.parse(await client.invoke("CreatePropertyCollector", client.serviceContent.propertyCollector));
    return new UpdateWaiter(client, ref);
  }

  async watch(obj: MoRef, pathSet: string[]): Promise<MoRef> {
    return moRef.parse(
      await this.client.invoke("CreateFilter", this.collector, {
        spec: filterSpecArg({ propSet: [{ type: obj.type, pathSet }], objectSet: [{ obj }] }),
        partialUpdates: false,
      }),
    );
  }

  /**
   * Waits up to maxWaitSeconds for changes; returns them as property path ->
   * value per object (empty when the wait timed out).
   */
  async next(maxWaitSeconds: number): Promise<Map<string, Record<string, VimValue | undefined>>> {
    const raw = await this.client.invoke("WaitForUpdatesEx", this.collector, {
      version: this.version,
      options: { maxWaitSeconds },
    });
    const changes = new Map<string, Record<string, VimValue | undefined>>();
    if (raw === undefined || raw === "") return changes;
    const set = UpdateSet.parse(raw);
    this.version = set.version;
    for (const f of set.filterSet) {
      for (const o of f.objectSet) {
        const props = changes.get(o.obj.toString()) ?? {};
        for (const c of o.changeSet) props[c.name] = c.op === "remove" ? undefined : (c.val as VimValue);
        changes.set(o.obj.toString(), props);
      }
    }
    return changes;
  }

  async destroy(): Promise<void> {
    await this.client.invoke("DestroyPropertyCollector", this.collector).catch(() => {});
  }
}
