/**
 * The metrics listener (docs/deployment.md "Observability"): `GET /metrics` only, on an address
 * of its own, never on the Gate's client listener. Whoever can reach this address reads the
 * metrics; they hold counts and timings by outcome, denial code, stage and breaker, and no tenant,
 * identity, tool or parameter (`metrics.ts`). Bind it to loopback, or to an address only the
 * scraper reaches (a NetworkPolicy in Kubernetes).
 */
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './metrics.js';

/** A listening metrics endpoint. */
export interface MetricsServer {
  readonly server: Server;
  /** `http://host:port` */
  readonly url: string;
  close(): Promise<void>;
}

/** Serves `metrics` at `GET /metrics` on `host:port` (0: any free port). */
export async function serveMetrics(metrics: Metrics, host: string, port: number): Promise<MetricsServer> {
  const server = createServer(
    { maxHeaderSize: 8 * 1024, headersTimeout: 10_000, requestTimeout: 10_000 },
    (req, res) => {
      req.resume();
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' || path !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
        return;
      }
      metrics.text().then(
        (text) => {
          res.writeHead(200, {
            'content-type': metrics.registry.contentType,
            'cache-control': 'no-store',
            'x-content-type-options': 'nosniff',
          });
          res.end(text);
        },
        () => {
          res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('metrics unavailable\n');
        },
      );
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const h = host.includes(':') ? `[${host}]` : host;
  return Object.freeze({
    server,
    url: `http://${h}:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  });
}
