// Client of the simulator's fault-injection control endpoint (test infrastructure).
import { request } from "undici";

/** A fault rule, as posted to the control endpoint. See README "Fault injection". */
export type FaultRule =
  | (RuleBase & { kind: "delay"; ms: number })
  | (RuleBase & { kind: "fault"; fault: string; message?: string; fields?: Record<string, unknown> })
  | (RuleBase & { kind: "reset"; phase?: "before" | "after" })
  | (RuleBase & { kind: "httpStatus"; status: number })
  | (RuleBase & { kind: "expireSessions" })
  | (RuleBase & { kind: "taskError"; method: `${string}_Task`; fault: string; message?: string; fields?: Record<string, unknown> })
  | (RuleBase & { kind: "taskDelay"; method: `${string}_Task`; ms: number })
  | (RuleBase & { kind: "lateNetwork"; ms: number })
  | (Omit<RuleBase, "method" | "args"> & { kind: "cutUpload"; afterBytes: number; path?: string });

interface RuleBase {
  /** SOAP method name; omitted or "*" matches every SOAP call. */
  method?: string;
  /**
   * Only calls whose decoded arguments have these values: a dotted path of element
   * names ("_this", "pgName", "portgrp.name", "specSet.propSet.type"; arrays match
   * if any element does) to the value's text (a moref by its value, e.g. "host-21").
   */
  args?: Record<string, string>;
  /** Fire from the nth matching request on (1 = the next one). */
  nth?: number;
  /** Fire this many times (default 1; -1 = every time). */
  times?: number;
}

/** A rule as the simulator reports it, with its counters. */
export type InstalledRule = FaultRule & { id: number; seen: number; fired: number };

export interface SimulatorStats {
  soapRequests: number;
  methods: Record<string, number>;
  /** SOAPAction header values seen, e.g. {"urn:vim25/6.5": 12}. */
  soapActions: Record<string, number>;
  uploadBytes: number;
  uploads: number;
  knownSessions: number;
  expiredSessions: number;
  /** TCP connections the SDK server accepted (TLS or plain), each counted once when opened. */
  connections: number;
}

export class VcsimControl {
  constructor(readonly baseUrl: string) {}

  private async call<T>(method: "GET" | "POST" | "DELETE", path: string, body?: unknown): Promise<T> {
    const res = await request(this.baseUrl + path, {
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.body.text();
    if (res.statusCode >= 400) {
      let reason = text.trim();
      try {
        reason = (JSON.parse(text) as { error?: string }).error ?? reason;
      } catch {
        // not JSON: keep the raw text
      }
      throw new Error(`vcsim control ${method} ${path}: HTTP ${res.statusCode}: ${reason}`);
    }
    return JSON.parse(text) as T;
  }

  /** Installs one rule and returns it with its id. */
  async addRule(rule: FaultRule): Promise<InstalledRule> {
    const [added] = await this.call<InstalledRule[]>("POST", "/rules", rule);
    if (!added) throw new Error("vcsim control: no rule returned");
    return added;
  }

  rules(): Promise<InstalledRule[]> {
    return this.call("GET", "/rules");
  }

  rule(id: number): Promise<InstalledRule> {
    return this.call("GET", `/rules/${id}`);
  }

  async clearRules(): Promise<void> {
    await this.call("DELETE", "/rules");
  }

  /** Logs out every session logged in on the simulator; returns how many there were. */
  async expireSessions(): Promise<number> {
    return (await this.call<{ expired: number }>("POST", "/sessions/expire")).expired;
  }

  /** Sessions logged in on the simulator's SessionManager right now (exact). */
  async liveSessions(): Promise<number> {
    return (await this.call<{ live: number }>("GET", "/sessions")).live;
  }

  /**
   * Marks datastores (names or moref values) as not satisfying a storage policy: SPBM's
   * PbmQueryMatchingHub leaves them out, PbmCheckRequirements gives them an error (pbm.go).
   */
  markPolicyIncompatible(policyId: string, datastores: string[]): Promise<Record<string, string[]>> {
    return this.call("POST", "/pbm/incompatible", { policyId, datastores });
  }

  clearPolicyMarks(): Promise<Record<string, string[]>> {
    return this.call("DELETE", "/pbm/incompatible");
  }

  stats(): Promise<SimulatorStats> {
    return this.call("GET", "/stats");
  }

  /** Returns the counters as they were, then zeroes them. */
  resetStats(): Promise<SimulatorStats> {
    return this.call("DELETE", "/stats");
  }
}
