/**
 * The Execution Layer's own HTTP listener, `POST /v1/execute` (SPEC §1, §7 scenario 3). In the
 * embedded deployment the Gate calls the executor in-process; this listener exists so that a
 * direct call that bypasses the Gate can be made, and is denied by the executor itself
 * (`ERR_ENVELOPE_MISSING` without an envelope). It binds to loopback only.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FailclosedError, parseJson, statusOf } from '../kernel/index.js';
import type { JsonObject, JsonValue } from '../kernel/index.js';
import type { Executor } from '../execution/index.js';

const MAX_BODY = 256 * 1024;

function readBody(req: IncomingMessage): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        resolve(null);
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

/** A listening Execution Layer endpoint. */
export interface ExecutionServer {
  readonly server: Server;
  readonly url: string;
  close(): Promise<void>;
}

/** Starts `POST /v1/execute` on `host:port` over `executor`. Every failure answers a deny. */
export async function createExecutionServer(
  executor: Executor,
  options: { host: string; port: number },
): Promise<ExecutionServer> {
  const server = createServer((req, res) => {
    const send = (status: number, body: JsonValue): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
    };
    const handle = async (): Promise<void> => {
      if (req.method !== 'POST' || req.url !== '/v1/execute') {
        req.resume();
        return send(404, { error: 'not_found' });
      }
      const body = await readBody(req);
      if (body === null)
        return send(413, { outcome: 'deny', code: 'ERR_REQUEST_TOO_LARGE', reason: 'too large' });
      let v: JsonValue;
      try {
        v = parseJson(body, { maxBytes: MAX_BODY, maxDepth: 32 });
      } catch (err) {
        const code = err instanceof FailclosedError ? err.code : 'ERR_REQUEST_MALFORMED';
        return send(400, { outcome: 'deny', code, reason: 'malformed JSON' });
      }
      const o = (typeof v === 'object' && v !== null && !Array.isArray(v) ? v : {}) as JsonObject;
      const r = await executor.execute({
        envelope: o['envelope'],
        tool: typeof o['tool'] === 'string' ? o['tool'] : '',
        tenant: typeof o['tenant'] === 'string' ? o['tenant'] : '',
        params: o['params'] ?? null,
        ...(typeof o['trace_id'] === 'string' ? { trace_id: o['trace_id'] } : {}),
        ...(typeof o['request_id'] === 'string' ? { request_id: o['request_id'] } : {}),
      });
      if (r.outcome === 'deny')
        return send(statusOf(r.code), { outcome: 'deny', code: r.code, reason: r.reason });
      return send(200, { outcome: 'executed', result: r.result, receipt: { ...r.receipt } });
    };
    handle().catch(() => {
      if (!res.headersSent) send(500, { outcome: 'deny', code: 'ERR_INTERNAL', reason: 'internal failure' });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    url: `http://${options.host}:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
