/**
 * A real OTLP/HTTP JSON receiver on loopback for the trace tests (docs/deployment.md
 * "Observability"): every span exported to it, with the `failclosed.role` of its resource.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One exported span, as the receiver got it. */
export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId?: string;
  readonly name: string;
  /** The resource's `failclosed.role`, '' when none. */
  readonly role: string;
  readonly attributes: readonly { key: string; value: { stringValue?: string } }[];
}

/** A listening receiver: set `OTEL_EXPORTER_OTLP_ENDPOINT` to `endpoint`. */
export interface OtlpReceiver {
  readonly endpoint: string;
  readonly spans: ReceivedSpan[];
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceSpans: {
          resource: { attributes: { key: string; value: { stringValue?: string } }[] };
          scopeSpans: { spans: Omit<ReceivedSpan, 'role'>[] }[];
        }[];
      };
      for (const rs of body.resourceSpans) {
        const role = rs.resource.attributes.find((a) => a.key === 'failclosed.role')?.value.stringValue ?? '';
        for (const ss of rs.scopeSpans)
          for (const s of ss.spans) spans.push({ ...s, attributes: s.attributes ?? [], role });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
