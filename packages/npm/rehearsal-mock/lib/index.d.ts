// Types of rehearsal-mock's API (hand-written; lib/index.js is the implementation).

/** `${process.platform}-${process.arch}` → the npm package carrying the binary for it. */
export declare const PLATFORM_PACKAGES: Readonly<Record<string, string>>;

/** The `rehearsal` binary for this machine: `REHEARSAL_BIN`, else the per-platform package's. */
export declare function binaryPath(): string;

export interface StartOptions {
  /** Path of the `rehearsal` binary (default: `binaryPath()`). */
  binary?: string;
  /** More `rehearsal serve` arguments, e.g. `['--seed', 'seed.json']`. */
  args?: string[];
  /** Environment of the server process, added to `process.env` (e.g. `{ REHEARSAL_LOG: 'debug' }`). */
  env?: Record<string, string>;
  /** How long to wait for the listening line (default 30 000 ms). */
  startupTimeoutMs?: number;
  /** Bound on each control-plane request (default 30 000 ms). */
  requestTimeoutMs?: number;
}

/** Starts `rehearsal serve` on 127.0.0.1 port 0 with a random control token. */
export declare function startRehearsal(options?: StartOptions): Promise<Rehearsal>;

/** A tenant as the control plane shows it. */
export interface Credentials {
  account_sid: string;
  auth_token: string;
  api_key: string;
  api_secret: string;
  service_sid: string;
  /** What a development token URL for this account carries (`/token?account=AC…&key=…`). */
  token_key: string;
}

/** What `rehearsal env` prints, for one account. */
export interface RehearsalEnv {
  TWILIO_ACCOUNT_SID: string;
  TWILIO_AUTH_TOKEN: string;
  TWILIO_API_KEY: string;
  TWILIO_API_SECRET: string;
  TWILIO_CONVERSATIONS_SERVICE_SID: string;
  REHEARSAL_URL: string;
  REHEARSAL_TWILSOCK_URL: string;
  /** `…/token` for the default account; `…/token?account=AC…&key=…` for a tenant. */
  REHEARSAL_TOKEN_URL: string;
  REHEARSAL_CONTROL_URL: string;
  REHEARSAL_CONTROL_TOKEN: string;
}

/** Which sessions a connection action is for: all of the account's (omitted), an identity's, or one. */
export type Target = undefined | null | string | { identity?: string; session?: number };

/** Sessions the action reached, and those that applied it before the answer. */
export interface ActionResult {
  sessions: number[];
  applied: number[];
}

export interface Connection {
  id: number;
  identity: string;
  [field: string]: unknown;
}

export interface ClockView {
  /** Milliseconds since the Unix epoch, on this account's clock. */
  now: number;
  iso: string;
  mode: string;
}

export interface Clock {
  now(): Promise<ClockView>;
  /** Stops the clock (at `atMs` if given). */
  freeze(atMs?: number): Promise<ClockView>;
  /** Moves the clock forward by `ms`; token expiry timers fire as time passes them. */
  advance(ms: number): Promise<ClockView>;
  /** Follows the server clock again. */
  resume(): Promise<ClockView>;
}

export type HttpFault =
  | { kind: 'fail'; status: number; code?: number; message?: string }
  | { kind: 'delay'; by: number };

export interface HttpFaultRule {
  /** HTTP method, or omitted for any. */
  method?: string;
  /** Path glob with `*`, e.g. `/v1/Conversations/*`. REST, media and requests tunnelled over twilsock. */
  path: string;
  /** How many matching requests it applies to (at least 1). */
  count?: number;
  fault: HttpFault;
}

export interface ArmedFault {
  id: number;
  remove(): Promise<void>;
}

export interface Faults {
  /** Arms an HTTP fault for this account's requests. */
  http(rule: HttpFaultRule): Promise<ArmedFault>;
  list(): Promise<{ http: unknown[]; inits: unknown[]; refusals: unknown[] }>;
  /** Disarms this account's faults. */
  clear(): Promise<void>;
}

export type JournalKind =
  | 'connection'
  | 'packet_in'
  | 'packet_out'
  | 'upstream'
  | 'rest'
  | 'sync_push'
  | 'media'
  | 'fault'
  | 'control'
  | 'webhook';

export interface JournalFilter {
  kind?: JournalKind | JournalKind[];
  identity?: string;
  session?: number;
  /** Only entries after this `seq`. */
  after?: number;
  /** Substring of the entry's summary or details. */
  contains?: string;
  /** The newest N. */
  limit?: number;
}

export interface JournalEntry {
  seq: number;
  /** Account time, ms. */
  at: number;
  wall_us: number;
  kind: JournalKind;
  account?: string;
  session?: number;
  identity?: string;
  summary: string;
  detail: Record<string, unknown>;
}

export interface JournalPage {
  entries: JournalEntry[];
  dropped: number;
  capacity: number;
  last_seq: number;
}

export interface Journal {
  (filter?: JournalFilter): Promise<JournalPage>;
  /** The next entry matching `filter` (with `after`, the ring is searched first). */
  waitFor(filter?: Omit<JournalFilter, 'limit'>, options?: { timeoutMs?: number }): Promise<JournalEntry>;
}

export interface CloseOptions {
  /** For 308: the least time the client should wait before reconnecting. */
  backoffMs?: number;
  description?: string;
  errorCode?: number;
}

export interface PostOptions {
  /** The identity posting, or `null` for the REST API (the default). */
  as?: string | null;
  /** Conversation SID or unique name. */
  conversation: string;
  body?: string;
  attributes?: string | Record<string, unknown>;
}

export interface InitDenialOptions {
  identity?: string;
  count?: number;
  status: number;
  errorCode?: number;
  description?: string;
  backoffMs?: number;
}

/** One account of a running server and the control calls that act on it. */
export declare class Account {
  readonly credentials: Readonly<Credentials>;
  readonly accountSid: string;
  readonly env: RehearsalEnv;
  readonly clock: Clock;
  readonly faults: Faults;
  readonly journal: Journal;
  /** An access token for `identity` on this account (`ttl` in seconds, 0–86400). */
  token(identity: string, options?: { ttl?: number }): Promise<string>;
  connections(identity?: string): Promise<Connection[]>;
  action(target: Target, action: string, fields?: Record<string, unknown>): Promise<ActionResult>;
  /** Drops the socket without a close handshake, like a network failure. */
  drop(target?: Target): Promise<ActionResult>;
  /** Sends a twilsock `close` (308 reconnects; 401, 406, 410, 417 are terminal). */
  close(target: Target, code: number, options?: CloseOptions): Promise<ActionResult>;
  /** As if the token expired now: `close` 410 with error 20104. */
  expireToken(target?: Target): Promise<ActionResult>;
  /** Sends `token_about_to_expire` now. */
  warnTokenExpiry(target?: Target): Promise<ActionResult>;
  latency(target: Target, ms: number): Promise<ActionResult>;
  holdNotifications(target?: Target): Promise<ActionResult>;
  releaseNotifications(target?: Target): Promise<ActionResult>;
  stall(target?: Target): Promise<ActionResult>;
  unstall(target?: Target): Promise<ActionResult>;
  refuseConnections(ms: number): Promise<{ until: number | null }>;
  denyInits(denial: InitDenialOptions): Promise<{ id: number }>;
  /** Any actor action: `{as, action: 'typing' | 'join' | …, ...fields}` (README, "Control plane"). */
  act(action: { as?: string | null; action: string; [field: string]: unknown }): Promise<Record<string, unknown>>;
  /** Posts a message as `as` (a participant) or as the REST API. */
  post(options: PostOptions): Promise<Record<string, unknown>>;
}

/** An isolated account with its own credentials. */
export declare class Tenant extends Account {
  /** Deletes the tenant; its credentials stop working. Idempotent. */
  delete(): Promise<void>;
  /** Back to its seed, same credentials. */
  reset(): Promise<Credentials>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A running `rehearsal serve`; its `Account` calls act on the seed's first account. */
export declare class Rehearsal extends Account {
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
  readonly twilsockUrl: string;
  readonly controlUrl: string;
  readonly controlToken: string;
  readonly pid: number | undefined;
  readonly running: boolean;
  /** The server's last output lines. */
  logs(): string;
  /** A new isolated tenant (the default seed's content with fresh credentials, or `seed`). */
  tenant(options?: { seed?: unknown; rngSeed?: number }): Promise<Tenant>;
  /** Deletes every tenant made by `tenant()` and not deleted yet. */
  deleteTenants(): Promise<void>;
  /** A raw control-plane request (path under `/_rehearsal/v1`). */
  request<T = any>(method: string, path: string, body?: unknown): Promise<T>;
  /** SIGTERM, then SIGKILL after 10 s. Idempotent. */
  stop(): Promise<{ code: number | null; signal: string | null }>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A control-plane error answer. */
export declare class ControlError extends Error {
  readonly status: number;
  /** The control plane's word (`no_tenant`, `invalid_body`, …) or Twilio's code for the token endpoint. */
  readonly code: string | number | undefined;
  readonly twilioCode: number | undefined;
  readonly body: unknown;
}
