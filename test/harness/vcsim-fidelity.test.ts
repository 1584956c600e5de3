// Where govmomi's simulator differs from vCenter, the harness behaves as vCenter does.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { RawSoap, RawSoapFault, asArray, moRefXml, toMoRef, type MoRef, type Parsed } from "../support/raw-soap.js";
import { startVcsim, type Vcsim } from "../vcsim/index.js";

let sim: Vcsim;
let sc: Parsed;

beforeAll(async () => {
  sim = await startVcsim({ clusters: 1, hosts: 1, vms: 25 });
  sc = await new RawSoap(sim.info.url).serviceContent();
});
afterAll(() => sim?.stop());
afterEach(() => sim.control.clearRules());

async function login(): Promise<RawSoap> {
  const soap = new RawSoap(sim.info.url);
  await soap.login(sc, sim.info.username, sim.info.password);
  return soap;
}

async function fault(p: Promise<unknown>): Promise<RawSoapFault> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RawSoapFault);
  return err as RawSoapFault;
}

describe("paging tokens", () => {
  const pc = (): MoRef => toMoRef(sc.propertyCollector);

  /** The first page of every VM's name, `maxObjects` as written by `options`. */
  async function firstPage(soap: RawSoap, options = "<options><maxObjects>10</maxObjects></options>"): Promise<Parsed> {
    const view = await soap.call(
      "CreateContainerView",
      toMoRef(sc.viewManager),
      `${moRefXml("container", toMoRef(sc.rootFolder))}<type>VirtualMachine</type><recursive>true</recursive>`,
    );
    const spec =
      `<specSet><propSet><type>VirtualMachine</type><pathSet>name</pathSet></propSet>` +
      `<objectSet>${moRefXml("obj", toMoRef(view!))}<skip>true</skip>` +
      `<selectSet xsi:type="TraversalSpec"><name>view</name><type>ContainerView</type><path>view</path><skip>false</skip></selectSet>` +
      `</objectSet></specSet>`;
    return (await soap.call("RetrievePropertiesEx", pc(), spec + options))!;
  }

  const next = (soap: RawSoap, token: string) => soap.call("ContinueRetrievePropertiesEx", pc(), `<token>${token}</token>`);

  it("reads maxObjects from the decoded request, however the XML writes it", async () => {
    const soap = await login();
    const page = await firstPage(soap, `<options><v:maxObjects xmlns:v="urn:vim25"> 10 </v:maxObjects></options>`);
    expect(asArray(page.objects)).toHaveLength(10);
    expect(page.token).toBeTruthy();
  });

  it("continues a token only in the session that made it", async () => {
    const a = await login();
    const b = await login();
    const page = await firstPage(a);
    const err = await fault(next(b, String(page.token)));
    expect(err.faultName).toBe("InvalidArgument");
    expect(err.detail.invalidProperty).toBe("token");
    // The owner still can: the other session's attempt consumed nothing.
    const second = await next(a, String(page.token));
    expect(asArray(second!.objects)).toHaveLength(10);
    const err2 = await fault(b.call("CancelRetrievePropertiesEx", pc(), `<token>${String(page.token)}</token>`));
    expect(err2.detail.invalidProperty).toBe("token");
  });

  it("kills a session's tokens when it logs out: a new login cannot continue them", async () => {
    const soap = await login();
    const page = await firstPage(soap);
    await soap.call("Logout", toMoRef(sc.sessionManager));
    await soap.login(sc, sim.info.username, sim.info.password);
    const err = await fault(next(soap, String(page.token)));
    expect(err.faultName).toBe("InvalidArgument");
    expect(err.detail.invalidProperty).toBe("token");
  });

  it("answers NotAuthenticated first when the caller's session expired", async () => {
    const soap = await login();
    const page = await firstPage(soap);
    await sim.control.expireSessions();
    expect((await fault(next(soap, String(page.token)))).faultName).toBe("NotAuthenticated");
    expect((await fault(new RawSoap(sim.info.url).call("RetrievePropertiesEx", pc(), "<specSet/>"))).faultName).toBe(
      "NotAuthenticated",
    );
  });
});

describe("taskDelay", () => {
  /** Waits for the task to end by watching info.state (WaitForUpdatesEx), then reads its info. */
  async function waitForTask(soap: RawSoap, task: MoRef): Promise<Parsed> {
    const pc = toMoRef(sc.propertyCollector);
    const filter = await soap.call(
      "CreateFilter",
      pc,
      `<spec><propSet><type>Task</type><pathSet>info.state</pathSet></propSet><objectSet>${moRefXml("obj", task)}</objectSet></spec>` +
        `<partialUpdates>false</partialUpdates>`,
    );
    let version = "";
    try {
      for (;;) {
        const set = await soap.call("WaitForUpdatesEx", pc, `<version>${version}</version><options><maxWaitSeconds>30</maxWaitSeconds></options>`);
        if (!set) continue;
        version = String(set.version);
        for (const fs of asArray(set.filterSet as Parsed | Parsed[]))
          for (const os of asArray(fs.objectSet as Parsed | Parsed[]))
            for (const c of asArray(os.changeSet as Parsed | Parsed[])) {
              const state = typeof c.val === "object" ? String(c.val["#text"]) : String(c.val);
              if (c.name === "info.state" && (state === "success" || state === "error")) {
                return (await soap.properties(sc, task, ["info"])).info as Parsed;
              }
            }
      }
    } finally {
      await soap.call("DestroyPropertyFilter", toMoRef(filter!));
    }
  }

  async function vmNamed(soap: RawSoap, index: number): Promise<{ ref: MoRef; name: string }> {
    const vms = await soap.retrieveAll(sc, "VirtualMachine", ["name"]);
    const vm = vms.sort((a, b) => String(a.name).localeCompare(String(b.name)))[index]!;
    return { ref: vm.obj as MoRef, name: String(vm.name) };
  }

  it("applies the change when the task ends: while it runs nothing shows, then the method's result does", async () => {
    const soap = await login();
    const vm = await vmNamed(soap, 0);
    await sim.control.addRule({ kind: "taskDelay", method: "Rename_Task", ms: 1500 });
    const newName = `delayed-${Date.now()}`;
    const task = toMoRef((await soap.call("Rename_Task", vm.ref, `<newName>${newName}</newName>`))!);
    expect(task.type).toBe("Task");
    const running = (await soap.properties(sc, task, ["info"])).info as Parsed;
    expect(running.state).toBe("running");
    expect(running.name).toBe("Rename_Task");
    expect((await soap.properties(sc, vm.ref, ["name"])).name).toBe(vm.name);

    const done = await waitForTask(soap, task);
    expect(done.state).toBe("success");
    expect(done.progress).toBe("100");
    expect((await soap.properties(sc, vm.ref, ["name"])).name).toBe(newName);
  });

  it("ends the task in the method's own fault when the method fails at the end", async () => {
    const soap = await login();
    const [a, b] = [await vmNamed(soap, 0), await vmNamed(soap, 1)];
    await sim.control.addRule({ kind: "taskDelay", method: "Rename_Task", ms: 300 });
    // A sibling's name: the simulator's rename refuses it (InvalidArgument on name).
    const task = toMoRef((await soap.call("Rename_Task", a.ref, `<newName>${b.name}</newName>`))!);
    const done = await waitForTask(soap, task);
    expect(done.state).toBe("error");
    expect(done.error.fault["@_type"]).toBe("InvalidArgument");
    expect(done.error.fault.invalidProperty).toBe("name");
    expect((await soap.properties(sc, a.ref, ["name"])).name).toBe(a.name);
  });

  it("finishes after the session that started it logged out, and leaves no session behind", async () => {
    await sim.control.expireSessions();
    const starter = await login();
    const vm = await vmNamed(starter, 2);
    await sim.control.addRule({ kind: "taskDelay", method: "Rename_Task", ms: 300 });
    const newName = `orphaned-${Date.now()}`;
    const task = toMoRef((await starter.call("Rename_Task", vm.ref, `<newName>${newName}</newName>`))!);
    await starter.call("Logout", toMoRef(sc.sessionManager));
    const watcher = await login();
    const done = await waitForTask(watcher, task);
    expect(done.state).toBe("success");
    expect((await watcher.properties(sc, vm.ref, ["name"])).name).toBe(newName);
    expect(await sim.control.liveSessions()).toBe(1);
  });
});
