/**
 * Issue 8 "Why" 4: an export of 100k+ entries while calls keep flowing. The ledger is made of
 * real governed calls (signed requests through the Gate, policy, envelope, execution), scaled
 * through the real ledger writer from those calls' recorded entries; the export streams through
 * the operator route to a file (no JSON answer, no 1 MiB parse), reads through a separate
 * read-only connection in chunks that yield to the event loop, and every call made meanwhile
 * executes. Memory is checked as what stays live: after a full collection, sampled during the
 * export, the heap and buffers held grow by far less than the bundle's size (a buffered export
 * would hold all of it). RSS is not used: V8 and the allocator keep freed pages, so its growth
 * reached the bundle's size on a busy machine though nothing was held. (SPEC §5, L7 read path
 * controls, FC-INV-5)
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  initDataDir,
  operatorDownload,
  readClientFile,
  readOperatorToken,
  startEmbedded,
  type EmbeddedInstance,
} from '../../src/embedded/index.js';
import type { LedgerEntry } from '../../src/ledger/index.js';
import { verifyBundleFile } from '../../src/verify/index.js';

const TARGET = Number(process.env['FC_TARGET'] ?? 100_000);
let work: string;
let dir: string;
let instance: EmbeddedInstance;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fc-export-scale-'));
  dir = join(work, 'data');
  await initDataDir(dir);
  instance = await startEmbedded(dir, { port: 0, executionPort: 0 });
  const file = readClientFile(dir, DEMO_CLIENT.identity);
  const client = createClient({
    url: instance.url,
    identity: file.identity,
    tenant: file.tenant,
    key: file.key,
  });
  for (let i = 0; i < 10; i++)
    expect(await client.call('echo', { message: `seed ${i}` }, { session: 'seed' })).toMatchObject({
      outcome: 'executed',
    });
  // Scale the recorded calls through the real writer (group commit), each copy under its own ids.
  const ledger = instance.core.ledger;
  const templates: LedgerEntry[] = (await ledger.store.readRange(0, ledger.size())).filter(
    (e) => e.trace_id !== '',
  );
  for (let copy = 0; ledger.size() < TARGET; copy++) {
    await Promise.all(
      templates.map((e) =>
        ledger.append({
          type: e.type,
          trace_id: `${e.trace_id}-${copy}`,
          request_id: `${e.request_id}-${copy}`,
          tenant: e.tenant,
          actor: e.actor,
          payload: e.payload,
        }),
      ),
    );
  }
  // The set-up kept the event loop busy for seconds: Node's HTTP server judges a new connection's
  // header timeout against a clock it refreshes on its own timer, so the first connection after
  // such a stretch may be cut. One throw-away request lets that clock catch up.
  await fetch(new URL('/healthz', instance.url)).catch(() => undefined);
}, 120_000);

afterAll(async () => {
  await instance.close();
  rmSync(work, { recursive: true, force: true });
});

describe('streaming export while calls flow', () => {
  it('exports 100k+ entries to a file while concurrent calls all execute; the bundle verifies', async () => {
    const file = readClientFile(dir, DEMO_CLIENT.identity);
    const client = createClient({
      url: instance.url,
      identity: file.identity,
      tenant: file.tenant,
      key: file.key,
    });
    const out = join(work, 'bundle.jsonl');
    const conn = {
      url: instance.url,
      token: readOperatorToken(dir),
      inProcess: true,
      close: () => Promise.resolve(),
    };
    // What stays live after a full collection: the heap and the buffers held outside it.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const live = (): number => {
      gc();
      const m = process.memoryUsage();
      return m.heapUsed + m.external + m.arrayBuffers;
    };
    const live0 = live();
    let peak = live0;
    // Once a second: each sample is a full collection of the test worker's heap, which holds
    // the module graphs of every file it ran before (vitest `isolate: false`), so sampling four
    // times a second took most of the time under a loaded run and the test past its limit.
    const sampler = setInterval(() => {
      peak = Math.max(peak, live());
    }, 1000);
    let done = false;
    const outcomes: string[] = [];
    const exporting = operatorDownload(conn, 'ledger-export', {}, out).finally(() => {
      done = true;
    });
    // Calls keep flowing for as long as the export runs (at least a few); one session per call,
    // so the session rate breaker (120 a minute) never trips however long the export takes.
    const caller = async (n: number): Promise<void> => {
      for (let i = 0; !done || i < 3; i++) {
        const r = await client.call('echo', { message: `live ${n}.${i}` }, { session: `live-${n}-${i}` });
        outcomes.push(r.outcome === 'executed' ? 'executed' : `${r.outcome} ${JSON.stringify(r)}`);
      }
    };
    const [answer] = await Promise.all([exporting, caller(1), caller(2), caller(3)]);
    clearInterval(sampler);

    expect(answer.status).toBe(200);
    expect(outcomes.length).toBeGreaterThanOrEqual(9);
    expect(outcomes.filter((o) => o !== 'executed')).toEqual([]);
    const lines = readFileSync(out, 'utf8').trimEnd().split('\n');
    const end = JSON.parse(lines[lines.length - 1]!) as { record: string; entries: number };
    expect(end.record).toBe('end');
    expect(end.entries).toBeGreaterThanOrEqual(TARGET);
    // The bundle is many times larger than anything held in memory while exporting.
    const size = statSync(out).size;
    expect(size).toBeGreaterThan(50 * 1024 * 1024);
    expect(peak - live0).toBeLessThan(size / 4);

    // Integrity (hashes, chain, Merkle root against the signed checkpoint) holds over the whole export.
    // The auditor pins the deployment's ledger key, taken out of band.
    const r = await verifyBundleFile(out, {
      invariant: 'L7-ledger-protection',
      trustedKey: instance.core.ledger.ledgerKey.vkey,
    });
    expect(r.checks.filter((c) => c.status === 'fail').map((c) => c.id)).toEqual([]);
    expect(r.exitCode).toBe(0);
    expect(r.coverage).toMatchObject({ entries: end.entries, complete: true });
  }, 240_000);
});
