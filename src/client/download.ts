/**
 * The audit-bundle download (`POST /v1/admin/ledger-export`, docs/ledger.md): the Gate answers a
 * JSON Lines stream that may be far larger than memory, so it is written to a file as it arrives
 * (through `PATH.partial`, renamed to `PATH` only when its last line is the bundle's end record)
 * and never parsed here; `failclosed verify` checks it offline. A refusal is a small JSON answer.
 * Shared by the operator client (`admin.ts`) and the CLI (`src/embedded/connect.ts`).
 */
import { createWriteStream, renameSync, rmSync } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseJson } from '../kernel/index.js';
import type { JsonValue } from '../kernel/index.js';

/** Largest JSON answer read when a download is refused (a denial, not a bundle). */
const MAX_REFUSAL_BYTES = 1024 * 1024;

/** What {@link downloadBundle} got: the Gate's refusal, or `{path, bytes}` of the written bundle. */
export interface DownloadAnswer {
  readonly status: number;
  readonly body: JsonValue;
  /** Bytes written, when the bundle was. */
  readonly bytes?: number;
}

/**
 * `POST url` with `body` (JSON) and `authorization`; a `200 application/x-ndjson` answer is
 * written to `path`. Rejects, leaving no file at `path`, when the transfer fails or ends before
 * the end record; a refusal larger than 1 MiB or not JSON rejects too.
 */
export async function downloadBundle(
  doFetch: typeof fetch,
  url: URL,
  authorization: string,
  body: JsonValue,
  path: string,
): Promise<DownloadAnswer> {
  const res = await doFetch(url, {
    method: 'POST',
    headers: { authorization, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    redirect: 'manual',
  });
  const type = res.headers.get('content-type') ?? '';
  if (res.status !== 200 || !type.startsWith('application/x-ndjson') || res.body === null) {
    const bytes = new Uint8Array(await res.arrayBuffer());
    return { status: res.status, body: parseJson(bytes, { maxBytes: MAX_REFUSAL_BYTES }) };
  }
  const partial = `${path}.partial`;
  let tail = '';
  let bytes = 0;
  const track = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      tail = (tail + chunk.toString('utf8')).slice(-256);
      done(null, chunk);
    },
  });
  try {
    await pipeline(Readable.fromWeb(res.body as never), track, createWriteStream(partial, { mode: 0o600 }));
    const last = tail.trimEnd().split('\n').pop() ?? '';
    if (!last.startsWith('{"record":"end"')) throw new Error('the export ended before its end record');
    renameSync(partial, path);
  } catch (err) {
    rmSync(partial, { force: true });
    throw err;
  }
  return { status: 200, body: { path, bytes }, bytes };
}
