/**
 * The console's HTTP face under `/console/` (docs/console.md): the static browser modules and the
 * JSON API the browser calls. Every answer carries a strict Content-Security-Policy, frame and
 * referrer denials and nosniff; data is never cached. State-changing requests must be same-origin
 * JSON (CSRF) and name an allowed Host (DNS rebinding); every refusal is a deny with its code.
 * The Gate calls {@link ConsoleEndpoint.handle} for the paths it matches; nothing here allows on
 * error (an exception answers 500 `ERR_INTERNAL` at the Gate's edge).
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FailclosedError, deny, isDeny, parseJson, statusOf } from '../kernel/index.js';
import type { Deny, JsonObject, JsonValue } from '../kernel/index.js';
import { routeApi, type ApiDeps } from './api.js';
import { OIDC_PENDING_MS } from './oidc.js';

/** The Content-Security-Policy of every console answer. */
export const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** Security headers of every console answer (docs/console.md "Headers"). */
export const CONSOLE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': CONSOLE_CSP,
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
});

/** The session cookie: `__Host-` (Secure, Path=/, no Domain); Chromium keeps Secure cookies of http://127.0.0.1 and localhost. */
export const SESSION_COOKIE = '__Host-failclosed-console';

/** The cookie of a pending OIDC sign-in: sealed by the gate, bound to the session, 10 minutes. */
export const OIDC_PENDING_COOKIE = '__Host-failclosed-oidc';

const MAX_BODY = 64 * 1024;
const ASSET = /^[a-z0-9-]{1,64}\.(js|css|html)$/;
const TYPES: Readonly<Record<string, string>> = {
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  html: 'text/html; charset=utf-8',
};

/** The console as the Gate's listener sees it. */
export interface ConsoleEndpoint {
  matches(path: string): boolean;
  handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void>;
}

/** Where the compiled browser modules are: `dist/src/console/web` of this package. */
export function consoleAssetsDir(): string | undefined {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i += 1) {
    const candidate = join(d, 'dist', 'src', 'console', 'web');
    if (existsSync(join(candidate, 'app.js'))) return candidate;
    if (existsSync(join(d, 'web', 'app.js')) && existsSync(join(d, 'web', 'index.html')))
      return join(d, 'web');
    d = dirname(d);
  }
  return undefined;
}

function send(
  res: ServerResponse,
  status: number,
  body: JsonValue,
  extra: Record<string, string | string[]> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...CONSOLE_HEADERS,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...extra,
  });
  res.end(text);
}

/**
 * Streams a download (an audit-bundle export) with backpressure, as the Gate's export does: a
 * failure mid-stream destroys the response, so the receiver sees a cut body, never a clean end.
 */
async function sendDownload(
  res: ServerResponse,
  lines: AsyncIterable<string>,
  filename: string,
): Promise<void> {
  res.writeHead(200, {
    ...CONSOLE_HEADERS,
    'content-type': 'application/x-ndjson; charset=utf-8',
    'content-disposition': `attachment; filename="${filename.replace(/[^A-Za-z0-9._-]/g, '_')}"`,
    'cache-control': 'no-store',
  });
  try {
    for await (const l of lines) {
      if (res.destroyed) return;
      if (!res.write(l))
        await new Promise<void>((resolve) => {
          const done = (): void => {
            res.off('drain', done);
            res.off('close', done);
            resolve();
          };
          res.once('drain', done);
          res.once('close', done);
        });
    }
    res.end();
  } catch {
    res.destroy();
  }
}

function refuse(res: ServerResponse, d: Deny): void {
  send(res, statusOf(d.code), { outcome: 'deny', code: d.code, reason: d.reason });
}

function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        // Answered 413, then the connection ends: nothing more of the body is read or kept.
        req.removeAllListeners('data');
        req.pause();
        resolve(undefined);
        return;
      }
      chunks.push(c);
    });
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

function cookieOf(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie ?? '';
  for (const part of header.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

function single(h: string | string[] | undefined): string | undefined {
  return Array.isArray(h) ? undefined : h;
}

/**
 * Same-origin JSON only (CSRF): an `Origin` among the console's own, a `Sec-Fetch-Site` (when the
 * browser sends one) of `same-origin`, and `application/json`. Undefined when it passes.
 */
export function checkStateChange(req: IncomingMessage, origins: readonly string[]): Deny | undefined {
  const origin = single(req.headers.origin);
  if (origin === undefined || !origins.includes(origin))
    return deny('ERR_ORIGIN_FORBIDDEN', 'a console change must come from the console’s own origin');
  const site = single(req.headers['sec-fetch-site']);
  if (site !== undefined && site !== 'same-origin')
    return deny('ERR_ORIGIN_FORBIDDEN', 'a console change must be a same-origin request');
  const type = single(req.headers['content-type'])?.split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') return deny('ERR_REQUEST_MALFORMED', 'a console change must be JSON');
  return undefined;
}

/** The origins (and so Hosts) the console answers for, given the listener's URL. */
export function consoleOrigins(url: string): readonly string[] {
  const u = new URL(url);
  const origins = [u.origin];
  if (u.hostname === '127.0.0.1') origins.push(`${u.protocol}//localhost:${u.port}`);
  return Object.freeze(origins);
}

/** Builds the console endpoint served under `/console/` for a listener at `url`. */
export function createConsoleEndpoint(
  deps: ApiDeps & { readonly url: string; readonly assetsDir?: string },
): ConsoleEndpoint {
  const origins = consoleOrigins(deps.url);
  const hosts = origins.map((o) => new URL(o).host);
  const dir = deps.assetsDir ?? consoleAssetsDir();
  const assets = new Map<string, { type: string; body: Buffer }>();
  if (dir !== undefined)
    for (const name of readdirSync(dir)) {
      const m = ASSET.exec(name);
      if (m?.[1] !== undefined)
        assets.set(name, { type: TYPES[m[1]] ?? 'text/plain', body: readFileSync(join(dir, name)) });
    }

  const serveAsset = (res: ServerResponse, name: string): void => {
    const a = assets.get(name);
    if (a === undefined) {
      if (assets.size === 0)
        return refuse(res, deny('ERR_INTERNAL', 'the console is not built (npm run build)'));
      return send(res, 404, { error: 'not_found' });
    }
    res.writeHead(200, {
      ...CONSOLE_HEADERS,
      'content-type': a.type,
      'content-length': a.body.length,
      'cache-control': 'no-cache',
    });
    res.end(a.body);
  };

  return Object.freeze({
    matches: (path: string) => path === '/console' || path.startsWith('/console/'),
    async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
      try {
        await answer(req, res, path);
      } catch {
        // Fail closed with the console's headers; no cause or stack leaves the process.
        req.resume();
        if (!res.headersSent) refuse(res, deny('ERR_INTERNAL', 'internal failure'));
        else res.destroy();
      }
    },
  });

  async function answer(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const method = req.method ?? 'GET';
    // DNS rebinding: another name resolving here is not the console's origin.
    if (!hosts.includes(single(req.headers.host) ?? '')) {
      req.resume();
      return refuse(res, deny('ERR_ORIGIN_FORBIDDEN', 'the Host is not the console’s'));
    }
    if (path === '/console') {
      req.resume();
      res.writeHead(308, { ...CONSOLE_HEADERS, location: '/console/', 'content-length': 0 });
      res.end();
      return;
    }
    if (!path.startsWith('/console/api/')) {
      req.resume();
      if (method !== 'GET') return send(res, 405, { error: 'method_not_allowed' });
      return serveAsset(res, path === '/console/' ? 'index.html' : path.slice('/console/'.length));
    }
    let body: JsonObject = {};
    if (method === 'POST') {
      const refused = checkStateChange(req, origins);
      if (refused !== undefined) {
        req.resume();
        return refuse(res, refused);
      }
      const bytes = await readBody(req);
      if (bytes === undefined) {
        // The rest of the body is never read: once the 413 is sent the connection is destroyed,
        // so no paused socket is kept open.
        res.once('finish', () => req.destroy());
        const d = deny('ERR_REQUEST_TOO_LARGE', 'too large');
        return send(
          res,
          statusOf(d.code),
          { outcome: 'deny', code: d.code, reason: d.reason },
          { connection: 'close' },
        );
      }
      try {
        const v = bytes.length === 0 ? {} : parseJson(bytes, { maxBytes: MAX_BODY, maxDepth: 16 });
        if (typeof v !== 'object' || v === null || Array.isArray(v))
          return refuse(res, deny('ERR_REQUEST_MALFORMED', 'the body must be a JSON object'));
        body = v as JsonObject;
      } catch (err) {
        return refuse(
          res,
          deny(err instanceof FailclosedError ? err.code : 'ERR_REQUEST_MALFORMED', 'malformed JSON'),
        );
      }
    } else if (method === 'GET') {
      req.resume();
      // Reads too: another site (another port of localhost is the same site) gets nothing.
      const site = single(req.headers['sec-fetch-site']);
      if (site !== undefined && site !== 'same-origin' && site !== 'none')
        return refuse(res, deny('ERR_ORIGIN_FORBIDDEN', 'console data is read by the console only'));
    } else {
      req.resume();
      return send(res, 405, { error: 'method_not_allowed' });
    }
    const a = await routeApi(deps, method, path.slice('/console/api/'.length), body, {
      session: cookieOf(req, SESSION_COOKIE),
      pending: cookieOf(req, OIDC_PENDING_COOKIE),
      address: req.socket.remoteAddress,
    });
    if (isDeny(a)) return refuse(res, a);
    if (a.download !== undefined && a.status === 200)
      return sendDownload(res, a.download.lines, a.download.filename);
    const cookies: string[] = [];
    const attrs = 'Path=/; HttpOnly; Secure; SameSite=Strict';
    if (a.cookie !== undefined)
      cookies.push(
        a.cookie === ''
          ? `${SESSION_COOKIE}=; ${attrs}; Max-Age=0`
          : `${SESSION_COOKIE}=${a.cookie}; ${attrs}`,
      );
    if (a.pending !== undefined)
      cookies.push(
        a.pending === ''
          ? `${OIDC_PENDING_COOKIE}=; ${attrs}; Max-Age=0`
          : `${OIDC_PENDING_COOKIE}=${a.pending}; ${attrs}; Max-Age=${OIDC_PENDING_MS / 1000}`,
      );
    return send(res, a.status, a.body, cookies.length === 0 ? {} : { 'set-cookie': cookies });
  }
}
