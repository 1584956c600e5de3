// Stack config `vmware:*` -> DriverConfig: defaults, environment fallback, errors.
import { describe, expect, it } from "vitest";
import { CONFIG_KEYS, ConfigError, InvalidCredentialsError, clientOptions, configSources, resolveConfig, wantOf, type ConfigKey } from "../provider/config.js";

const REQUIRED = { hostIp: "vc.example.com", hostUsername: "svc@vsphere.local", hostPassword: "pw-Secret-1" };
const fromMap = (m: Record<string, string>) => (key: string) => m[key];

describe("configuration", () => {
  it("applies the seed's defaults", () => {
    const cfg = resolveConfig(fromMap(REQUIRED), {});
    expect(cfg).toEqual({
      ...REQUIRED,
      hostPort: 443,
      apiRetryCount: 10,
      taskPollInterval: 0.5,
      insecure: false,
      useLinkedClone: true,
      maximumObjects: 100,
      pbmEnabled: false,
      flatNetworkBridge: "br100",
      vlanInterface: "vmnic0",
      reservedHostMemoryMb: 512,
      removeUnusedBaseImages: true,
      removeUnusedOriginalMinimumAgeSeconds: 86400,
    });
  });

  it("names a default for exactly the keys the seed gives one", () => {
    const withDefaults = Object.entries(CONFIG_KEYS)
      .filter(([, s]) => "default" in s)
      .map(([k]) => k)
      .sort();
    expect(withDefaults).toEqual(
      [
        "apiRetryCount",
        "flatNetworkBridge",
        "hostPort",
        "insecure",
        "maximumObjects",
        "pbmEnabled",
        "removeUnusedBaseImages",
        "removeUnusedOriginalMinimumAgeSeconds",
        "reservedHostMemoryMb",
        "taskPollInterval",
        "useLinkedClone",
        "vlanInterface",
      ].sort(),
    );
  });

  const SAMPLE: Record<ConfigKey, [string, unknown]> = {
    hostIp: ["vc2.example.com", "vc2.example.com"],
    hostPort: ["8443", 8443],
    hostUsername: ["admin", "admin"],
    hostPassword: ["x-Secret-2", "x-Secret-2"],
    clusterName: ["prod", "prod"],
    datastoreRegex: ["nas.*", "nas.*"],
    apiRetryCount: ["3", 3],
    taskPollInterval: ["1.5", 1.5],
    caFile: ["/etc/ca.pem", "/etc/ca.pem"],
    insecure: ["true", true],
    thumbprint: ["AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01", "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01"],
    cachePrefix: ["shared", "shared"],
    useLinkedClone: ["false", false],
    maximumObjects: ["7", 7],
    serialPortServiceUri: ["telnet://10.0.0.5:13370", "telnet://10.0.0.5:13370"],
    serialPortProxyUri: ["telnets://proxy:13370", "telnets://proxy:13370"],
    integrationBridge: ["br-int", "br-int"],
    consoleDelaySeconds: ["2", 2],
    pbmEnabled: ["true", true],
    pbmDefaultPolicy: ["gold", "gold"],
    pbmWsdlLocation: ["file:///pbm.wsdl", "file:///pbm.wsdl"],
    wsdlLocation: ["file:///vim.wsdl", "file:///vim.wsdl"],
    flatNetworkBridge: ["br200", "br200"],
    vlanInterface: ["vmnic1", "vmnic1"],
    reservedHostMemoryMb: ["0", 0],
    removeUnusedBaseImages: ["false", false],
    removeUnusedOriginalMinimumAgeSeconds: ["3600", 3600],
  };

  it.each(Object.keys(CONFIG_KEYS) as ConfigKey[])("reads %s from stack config and from its VMWARE_* variable", (key) => {
    const [value, parsed] = SAMPLE[key];
    expect(resolveConfig(fromMap({ ...REQUIRED, [key]: value }), {})[key]).toEqual(parsed);
    const envName = CONFIG_KEYS[key].env[0];
    expect(envName).toBe(`VMWARE_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`);
    const envOnly = { ...REQUIRED } as Record<string, string>;
    delete envOnly[key];
    expect(resolveConfig(fromMap(envOnly), { [envName]: value })[key]).toEqual(parsed);
  });

  it("takes the Terraform/Pulumi vSphere providers' variables, below stack config and VMWARE_*", () => {
    const env = { VSPHERE_SERVER: "vs.example.com", VSPHERE_USER: "vs-user", VSPHERE_PASSWORD: "vs-Pass-1", VSPHERE_ALLOW_UNVERIFIED_SSL: "true" };
    const cfg = resolveConfig(fromMap({}), env);
    expect(cfg).toMatchObject({ hostIp: "vs.example.com", hostUsername: "vs-user", hostPassword: "vs-Pass-1", insecure: true });
    expect(resolveConfig(fromMap({}), { ...env, VMWARE_HOST_IP: "vm.example.com" }).hostIp).toBe("vm.example.com");
    expect(resolveConfig(fromMap({ hostIp: "cfg.example.com" }), { ...env, VMWARE_HOST_IP: "vm.example.com" }).hostIp).toBe("cfg.example.com");
  });

  it("lists every bad or missing key in one error naming the key, the value and what is accepted", () => {
    const err = (() => {
      try {
        resolveConfig(fromMap({ hostPort: "70000", apiRetryCount: "many", datastoreRegex: "nas(", flatNetworkBridge: "has space", insecure: "perhaps" }), {});
      } catch (e) {
        return e;
      }
      return undefined;
    })() as ConfigError;
    expect(err).toBeInstanceOf(ConfigError);
    expect(err.code).toBe("InvalidConfig");
    expect(err.message).toContain("vmware:hostIp is not set (set it with `pulumi config set vmware:hostIp ...` or VMWARE_HOST_IP / VSPHERE_SERVER)");
    expect(err.message).toContain("pulumi config set --secret vmware:hostPassword");
    expect(err.message).toContain(`vmware:hostPort = "70000": want a whole number from 1 to 65535`);
    expect(err.message).toContain(`vmware:apiRetryCount = "many": want a whole number from 0 to 100`);
    expect(err.message).toContain(`vmware:datastoreRegex = "nas(": want a valid regular expression`);
    expect(err.message).toContain(`vmware:flatNetworkBridge = "has space": want a Linux bridge name`);
    expect(err.message.split("\n")).toContain(`  - vmware:insecure = "perhaps": want true or false`);
  });

  function messageOf(values: Record<string, string>): string {
    try {
      resolveConfig(fromMap({ ...REQUIRED, ...values }), {});
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as Error).message;
    }
    throw new Error(`accepted ${JSON.stringify(values)}`);
  }

  it.each([
    ["127.0.0.1:18999", "this is a host with a port"],
    ["vc.example.com:443", "this is a host with a port"],
    ["https://vc.example.com", "this is a URL"],
    ["https://vc.example.com:8443/sdk", "this is a URL"],
    ["vc example.com", "it contains spaces"],
    ["[]", "it is empty"],
    ["vc.example.com/sdk", ""],
  ])("refuses vmware:hostIp = %j at once, saying a host name or IP address is wanted", (hostIp, note) => {
    const message = messageOf({ hostIp });
    expect(message).toContain(`vmware:hostIp = ${JSON.stringify(hostIp)}: want a host name or IP address; put the port in vmware:hostPort${note ? ` (${note})` : ""}`);
  });

  it.each(["10.0.0.5", "vc.example.com", "vc-01", "::1", "[fe80::1]", " vc.example.com "])("accepts vmware:hostIp = %j", (hostIp) => {
    expect(resolveConfig(fromMap({ ...REQUIRED, hostIp }), {}).hostIp).toBe(hostIp.trim());
  });

  it("says each number or boolean key's own type and range, never zod's words", () => {
    const cases: Array<[ConfigKey, string, string]> = [
      ["hostPort", "abc", "a whole number from 1 to 65535"],
      ["hostPort", "0", "a whole number from 1 to 65535"],
      ["hostPort", "44.5", "a whole number from 1 to 65535"],
      ["apiRetryCount", "-1", "a whole number from 0 to 100"],
      ["taskPollInterval", "0", "a number of seconds greater than 0"],
      ["taskPollInterval", "fast", "a number of seconds greater than 0"],
      ["maximumObjects", "lots", "a whole number from 1 to 100000"],
      ["consoleDelaySeconds", "9999", "a whole number of seconds from 0 to 3600"],
      ["reservedHostMemoryMb", "-5", "a whole number of MB, 0 or more"],
      ["removeUnusedOriginalMinimumAgeSeconds", "1d", "a whole number of seconds, 0 or more"],
      ["insecure", "2", "true or false"],
      ["useLinkedClone", "maybe", "true or false"],
      ["pbmEnabled", "on", "true or false"],
      ["removeUnusedBaseImages", "nah", "true or false"],
    ];
    for (const [key, value, want] of cases) {
      const message = messageOf({ [key]: value });
      expect(message.split("\n")).toContain(`  - vmware:${key} = ${JSON.stringify(value)}: want ${want}`);
      expect(message).not.toMatch(/expected|received|Invalid input|as the key takes/i);
      expect(wantOf(key)).toBe(want);
    }
  });

  it("says where each value came from, for errors that name the setting to fix", () => {
    const sources = configSources(fromMap({ hostUsername: "u" }), { VSPHERE_PASSWORD: "p" });
    expect(sources.hostUsername).toBe("vmware:hostUsername");
    expect(sources.hostPassword).toBe("VSPHERE_PASSWORD (fallback for vmware:hostPassword)");
    expect(sources.hostPort).toBe("the default of vmware:hostPort");

    const fromEnv = new InvalidCredentialsError("vc.example.com:443", "svc", configSources(fromMap({}), { VSPHERE_USER: "svc", VMWARE_HOST_PASSWORD: "x" }));
    expect(fromEnv.code).toBe("InvalidCredentials");
    expect(fromEnv.message).toContain(`vCenter vc.example.com:443 refused the login of "svc": wrong user name or password`);
    expect(fromEnv.message).toContain("Fix VSPHERE_USER (fallback for vmware:hostUsername) or VMWARE_HOST_PASSWORD (fallback for vmware:hostPassword)");
    expect(fromEnv.message).toContain("or set vmware:hostUsername / vmware:hostPassword in the stack configuration");
  });

  it("never shows a secret in an error", () => {
    expect(() => resolveConfig(fromMap({ ...REQUIRED, hostPort: "0" }), {})).toThrow(/vmware:hostPort = "0"/);
    const leaked = "pw-Leak-9";
    let message = "";
    try {
      resolveConfig(fromMap({ ...REQUIRED, hostPassword: leaked, hostPort: "x" }), {});
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain("vmware:hostPort");
    expect(message).not.toContain(leaked);
    const env = { VMWARE_HOST_PORT: "bad" };
    expect(() => resolveConfig(fromMap(REQUIRED), env)).toThrow(/VMWARE_HOST_PORT \(fallback for vmware:hostPort\) = "bad"/);
  });

  it("marks the keys that have no effect here, with the reason", () => {
    const ignored = Object.entries(CONFIG_KEYS).filter(([, s]) => "ignoredBecause" in s);
    expect(ignored.map(([k]) => k).sort()).toEqual(["pbmWsdlLocation", "reservedHostMemoryMb", "wsdlLocation"]);
    // Accepted all the same.
    expect(resolveConfig(fromMap({ ...REQUIRED, wsdlLocation: "file:///x.wsdl" }), {}).wsdlLocation).toBe("file:///x.wsdl");
  });

  it("maps to driver client options (seconds to ms; insecure ignored when caFile is set)", () => {
    const cfg = resolveConfig(fromMap({ ...REQUIRED, taskPollInterval: "0.25", caFile: "/ca.pem", insecure: "true" }), {});
    expect(clientOptions(cfg)).toMatchObject({ host: "vc.example.com", port: 443, taskPollIntervalMs: 250, caFile: "/ca.pem", insecure: false, apiRetryCount: 10, maximumObjects: 100 });
  });
});

describe("README", () => {
  it("documents every key, its default and its meaning (the generated table)", async () => {
    const { readFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const { configTable } = await import("../provider/config-doc.js");
    const readme = readFileSync(join(__dirname, "..", "README.md"), "utf8");
    const between = readme.split("<!-- config-table:start -->")[1]?.split("<!-- config-table:end -->")[0]?.trim();
    expect(between).toBe(configTable());
  });
});
