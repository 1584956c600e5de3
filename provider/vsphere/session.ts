// The vim25 session: login, one re-login shared by every caller that saw the session
// expire, logout (with a deadline, for a process on its way out), keep-alive. The
// cookie lives on the HTTP channel so SOAP calls and transfers share it.
import type { z } from "zod";
import { VimFault } from "./errors.js";
import type { HttpChannel, LogEvent } from "./http.js";
import { UserSessionSchema } from "./methods.js";
import type { MethodArgs } from "./soap/envelope.js";
import type { MoRef, VimValue } from "./soap/xml.js";

export type UserSession = z.infer<typeof UserSessionSchema>;

/** One SOAP call without re-login (the session's own calls must not re-login). */
export type SessionSoap = (method: string, self: MoRef, args: MethodArgs, once?: { timeoutMs: number }) => Promise<VimValue | undefined>;

export interface SessionOptions {
  endpoint: string;
  username: string;
  password: string;
  log: (event: LogEvent) => void;
}

export class Session {
  #user: UserSession | undefined;
  #generation = 0;
  #relogin: Promise<void> | undefined;
  #keepAlive: NodeJS.Timeout | undefined;
  relogins = 0;

  constructor(
    private readonly soap: SessionSoap,
    private readonly channel: HttpChannel,
    private readonly opts: SessionOptions,
  ) {}

  /** The logged-in user (the key is not the cookie). */
  get user(): UserSession | undefined {
    return this.#user;
  }

  /** Bumped by every login: a caller that saw an expiry of generation g re-logs in only if still g. */
  get generation(): number {
    return this.#generation;
  }

  async login(sessionManager: MoRef | undefined): Promise<void> {
    if (!sessionManager) throw new VimFault("NotSupported", `${this.opts.endpoint} has no session manager`);
    this.channel.cookie = undefined;
    const started = Date.now();
    const answer = await this.soap("Login", sessionManager, { userName: this.opts.username, password: this.opts.password });
    this.#user = UserSessionSchema.parse(answer);
    this.#generation++;
    this.opts.log({ level: "info", event: "login", message: `logged in to ${this.opts.endpoint} as ${this.#user.userName}`, ms: Date.now() - started });
  }

  /** One re-login for all callers that saw the session of `generation` expire. */
  relogin(generation: number, sessionManager: MoRef | undefined): Promise<void> {
    if (generation !== this.#generation) return Promise.resolve(); // someone already did
    if (!this.#relogin) {
      this.relogins++;
      this.opts.log({ level: "warn", event: "relogin", message: `session on ${this.opts.endpoint} expired; logging in again` });
      this.#relogin = this.login(sessionManager).finally(() => {
        this.#relogin = undefined;
      });
    }
    return this.#relogin;
  }

  /** Calls `ping` every `everyMs` while the session lives (vCenter ends idle sessions after 30 min). */
  keepAlive(everyMs: number, ping: () => Promise<unknown>): void {
    if (everyMs <= 0) return;
    this.#keepAlive = setInterval(() => {
      ping().then(
        () => this.opts.log({ level: "debug", event: "keep-alive", message: `kept the session on ${this.opts.endpoint} alive` }),
        () => {},
      );
    }, everyMs).unref();
  }

  /**
   * Logs out, best effort: one attempt within `timeoutMs` (the session expires on
   * its own otherwise). Returns whether the server confirmed it.
   */
  async logout(sessionManager: MoRef | undefined, timeoutMs: number): Promise<boolean> {
    if (this.#keepAlive) clearInterval(this.#keepAlive);
    this.#keepAlive = undefined;
    const user = this.#user;
    this.#user = undefined;
    if (!user || !sessionManager) return false;
    try {
      await this.soap("Logout", sessionManager, {}, { timeoutMs });
      this.opts.log({ level: "info", event: "logout", message: `logged out of ${this.opts.endpoint}` });
      return true;
    } catch {
      return false;
    } finally {
      this.channel.cookie = undefined;
    }
  }
}
