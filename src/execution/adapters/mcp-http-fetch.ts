/**
 * The fetch the Streamable HTTP upstream adapter (mcp-http.ts) gives the SDK's client transport:
 * every request goes to the url's origin and to the one address checked before the call (no
 * second name resolution), none follows a redirect (a 3xx ends the call `ERR_EGRESS_DENIED`), at
 * most `maxRequests` per call (`ERR_EGRESS_LIMIT`), and the bodies of all answers together at
 * `cap` bytes (`ERR_TOOL_OUTPUT_LIMIT`); a connection that fails is `ERR_TOOL_FAILED`. An
 * `https` url is reached over a connection whose certificate verified before anything is written
 * to it (upstream-tls.ts; `ERR_UPSTREAM_TLS`). (OE-INV-011, OE-INV-013)
 */
import { request as httpRequest } from 'node:http';
import type { IncomingMessage, RequestOptions } from 'node:http';
import type { LookupFunction } from 'node:net';
import { isIP } from 'node:net';
import type { FetchLike } from '@modelcontextprotocol/client';
import { deny } from '../../kernel/index.js';
import type { Deny } from '../../kernel/index.js';
import type { HttpUrlTemplate } from './http.js';
import { connectVerifiedTls, tlsFailureAfterHandshake } from './upstream-tls.js';
import type { TlsMaterial } from './upstream-tls.js';

/** HTTP statuses whose answer has no body (the Response constructor refuses one). */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/** What {@link createUpstreamFetch} enforces, and where it reports the first fault. */
export interface UpstreamFetchOptions {
  readonly url: HttpUrlTemplate;
  /** The checked address of the url's host: every connection goes there. */
  readonly address: string;
  /** Bytes of answer bodies allowed over the whole call. */
  readonly cap: number;
  readonly maxRequests: number;
  /** The trust of an `https` url (default: Node's trusted roots, no client certificate). */
  readonly tls?: TlsMaterial;
  /** Called when the upstream answers 401 (its bearer refused). */
  readonly onUnauthorized?: () => void;
  /** Aborted when the call ends: every request in flight is cut. */
  readonly ended: AbortSignal;
  fault(): Deny | undefined;
  fail(d: Deny): void;
}

/** Creates the call's fetch (see the file comment). */
export function createUpstreamFetch(o: UpstreamFetchOptions): FetchLike {
  const { url, address, cap, maxRequests } = o;
  const fail = (d: Deny): void => o.fail(d);
  const family = isIP(address) === 6 ? 6 : 4;
  // The connection goes to the address checked before the call; nothing resolves the name again.
  const lookup = ((_h: string, opts: { all?: boolean }, cb: (...a: unknown[]) => void) => {
    if (opts?.all === true) cb(null, [{ address, family }]);
    else cb(null, address, family);
  }) as unknown as LookupFunction;
  const origin = new URL(`${url.scheme}://${url.authority}/`).origin;
  let requests = 0;
  let used = 0;
  return (input, init) =>
    new Promise<Response>((resolve, reject) => {
      if (o.fault() !== undefined) {
        reject(new Error('the upstream connection is ended'));
        return;
      }
      const target = new URL(input instanceof URL ? input.href : String(input));
      if (target.origin !== origin || target.username !== '' || target.password !== '') {
        fail(deny('ERR_EGRESS_DENIED', 'the MCP client was sent to another origin'));
        reject(new Error('origin refused'));
        return;
      }
      requests += 1;
      if (requests > maxRequests) {
        fail(deny('ERR_EGRESS_LIMIT', `more than ${maxRequests} HTTP requests to the upstream`));
        reject(new Error('request limit'));
        return;
      }
      const body = init?.body;
      if (body !== undefined && body !== null && typeof body !== 'string') {
        reject(new Error('unsupported request body'));
        return;
      }
      const out: Record<string, string> = {};
      new Headers(init?.headers).forEach((v, k) => (out[k] = v));
      out['host'] = url.authority;
      const signals = [o.ended, ...(init?.signal ? [init.signal] : [])];
      const signal = AbortSignal.any(signals);
      const options_: RequestOptions = {
        host: url.destination.host,
        port: url.destination.port,
        method: init?.method ?? 'GET',
        path: `${target.pathname}${target.search}`,
        headers: out,
        signal,
      };
      if (url.scheme === 'http') {
        send({ ...options_, lookup, agent: false });
        return;
      }
      // https: the request is written only to a connection whose certificate verified.
      void connectVerifiedTls({ to: url.destination, address, material: o.tls ?? {}, signal }).then(
        (socket) => {
          if ('outcome' in socket) {
            if (init?.signal?.aborted !== true) fail(socket);
            reject(new Error('the TLS connection failed'));
            return;
          }
          send({ ...options_, createConnection: () => socket });
        },
      );
      function send(requestOptions: RequestOptions): void {
        const req = httpRequest(requestOptions, (res: IncomingMessage) => {
          const status = res.statusCode ?? 0;
          if (status === 401) o.onUnauthorized?.();
          if (status >= 300 && status <= 399) {
            fail(
              deny('ERR_EGRESS_DENIED', `the upstream answered a redirect (HTTP ${status}), never followed`),
            );
            res.destroy();
            reject(new Error('redirect refused'));
            return;
          }
          let done = false;
          const stream = new ReadableStream<Uint8Array>({
            start(controller) {
              res.on('data', (chunk: Buffer) => {
                if (done) return;
                used += chunk.length;
                if (used > cap) {
                  done = true;
                  fail(deny('ERR_TOOL_OUTPUT_LIMIT', 'the upstream exceeded the output limit'));
                  controller.error(new Error('output limit'));
                  res.destroy();
                  return;
                }
                controller.enqueue(new Uint8Array(chunk));
              });
              res.on('end', () => {
                if (done) return;
                done = true;
                controller.close();
              });
              res.on('error', (e) => {
                if (done) return;
                done = true;
                controller.error(e);
              });
            },
            cancel() {
              done = true;
              res.destroy();
            },
          });
          const responseHeaders = new Headers();
          for (const [k, v] of Object.entries(res.headers))
            if (typeof v === 'string') responseHeaders.set(k, v);
            else if (Array.isArray(v)) for (const x of v) responseHeaders.append(k, x);
          try {
            resolve(
              new Response(NULL_BODY.has(status) ? null : stream, { status, headers: responseHeaders }),
            );
          } catch {
            fail(deny('ERR_TOOL_FAILED', 'the upstream answered an invalid HTTP status'));
            res.destroy();
            reject(new Error('invalid status'));
          }
        });
        req.on('error', (err) => {
          // The MCP client's own cancellations (a stream it no longer needs) are not faults.
          if (init?.signal?.aborted !== true)
            fail(
              url.scheme === 'https'
                ? tlsFailureAfterHandshake(err, url.destination)
                : deny('ERR_TOOL_FAILED', 'the connection to the upstream failed'),
            );
          reject(err);
        });
        req.end(body ?? undefined);
      }
    });
}
