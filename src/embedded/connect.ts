/**
 * How operator tools reach a deployment: the running server announced in `server.json`, or, when
 * none answers, an in-process instance started for the duration of one command. Either way every
 * operator action takes the same path (the Gate's `/v1/admin/` routes behind the operator token),
 * so the ledger has exactly one writer at a time. The composition is loaded only when this command
 * starts its own instance: a command that reaches a running server loads no store, policy engine or
 * logger.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { downloadBundle, nodeExchange, sendJson } from '../client/index.js';
import { parseJson } from '../kernel/index.js';
import type { JsonValue } from '../kernel/index.js';
import { dataPaths, readConfig, readOperatorToken } from './data-dir.js';

/** A reachable Gate and the operator token for it. */
export interface Connection {
  readonly url: string;
  readonly token: string;
  /** True when this command started its own instance. */
  readonly inProcess: boolean;
  close(): Promise<void>;
}

/** Records the running server's URL and pid in `server.json` (mode 0600). */
export function announceServer(dir: string, url: string): void {
  writeFileSync(dataPaths(dir).server, `${JSON.stringify({ url, pid: process.pid })}\n`, { mode: 0o600 });
}

/** Removes `server.json` when it names this process. */
export function withdrawServer(dir: string): void {
  const path = dataPaths(dir).server;
  try {
    const v = parseJson(readFileSync(path), { maxBytes: 4096 }) as { pid?: unknown };
    if (v.pid === process.pid) rmSync(path, { force: true });
  } catch {
    // Nothing announced, or not by us.
  }
}

async function answers(url: string): Promise<boolean> {
  try {
    const res = await fetch(new URL('/healthz', url), { signal: AbortSignal.timeout(1000) });
    return res.status === 200;
  } catch {
    return false;
  }
}

/** The URL of the server announced for `dir`, if it answers. */
export async function runningServer(dir: string): Promise<string | undefined> {
  const path = dataPaths(dir).server;
  if (!existsSync(path)) return undefined;
  try {
    const v = parseJson(readFileSync(path), { maxBytes: 4096 }) as { url?: unknown };
    if (typeof v.url === 'string' && (await answers(v.url))) return v.url;
  } catch {
    // A stale or malformed announcement: start in-process instead.
  }
  return undefined;
}

/** How an operator tool connects. */
export interface ConnectOptions {
  /** The operator token to act with (a person's, OE-INV-025); default the data directory's bootstrap token. */
  readonly token?: string;
}

/**
 * Connects to the running server for `dir`, or starts one in-process on free loopback ports, as
 * the operator whose token `options.token` is (default the bootstrap operator's).
 */
export async function connect(dir: string, options: ConnectOptions = {}): Promise<Connection> {
  const token = options.token ?? readOperatorToken(dir);
  const url = await runningServer(dir);
  if (url !== undefined) return { url, token, inProcess: false, close: () => Promise.resolve() };
  const { controlPlaneConfigGaps, startEmbedded } = await import('./embedded.js');
  // A Control Plane process's data directory takes no call in-process either (`serve control-plane`).
  const controlPlane = controlPlaneConfigGaps(readConfig(dir)).length === 0;
  const instance = await startEmbedded(dir, {
    port: 0,
    executionPort: 0,
    ...(controlPlane ? { role: 'control-plane' as const } : {}),
  });
  return { url: instance.url, token, inProcess: true, close: () => instance.close() };
}

/** A JSON answer from the Gate. */
export interface HttpAnswer {
  readonly status: number;
  readonly body: JsonValue;
}

/**
 * `GET path` (with the operator token when given), through the client library's exchange: never
 * rejects; no answer, or one that is not JSON, is `ERR_INTERNAL` whose reason says whether
 * anything was sent (docs/client.md).
 */
export function getJson(conn: Connection, path: string, withToken: boolean): Promise<HttpAnswer> {
  return sendJson(nodeExchange, conn.url, 'GET', path, withToken ? `Bearer ${conn.token}` : undefined);
}

/**
 * `POST /v1/admin/{action}` with the operator token, as {@link getJson}: an action whose answer
 * was lost or unreadable says it may have taken effect (a kill switch whose answer was cut on
 * its way back is on), one never sent says so.
 */
export function operatorAction(conn: Connection, action: string, body: JsonValue): Promise<HttpAnswer> {
  return sendJson(nodeExchange, conn.url, 'POST', `/v1/admin/${action}`, `Bearer ${conn.token}`, body);
}

/**
 * `POST /v1/admin/{action}` whose success is a JSON Lines stream (the audit-bundle export): the
 * body is written to `path` as it arrives (through `path.partial`, renamed only when the last
 * line is the bundle's end record), never parsed in memory. A refusal comes back as its JSON
 * answer; a transfer cut short rejects and leaves no file at `path`.
 */
export function operatorDownload(
  conn: Connection,
  action: string,
  body: JsonValue,
  path: string,
): Promise<HttpAnswer & { readonly bytes?: number }> {
  return downloadBundle(fetch, new URL(`/v1/admin/${action}`, conn.url), `Bearer ${conn.token}`, body, path);
}
