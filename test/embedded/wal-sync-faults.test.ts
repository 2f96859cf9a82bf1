/**
 * A failed `fsync` of the embedded deployment's write-ahead log (`src/kernel/sqlite-commit.ts`):
 * the commits waiting for it are not acknowledged, so the call denies and its tool never runs;
 * since what is on disk is then unknown, every later call denies too and `/readyz` says not
 * ready, until the gate is restarted; the restarted gate serves again over a ledger that opens
 * verified. The `fsync` is the real one, wrapped to fail while armed. (FC-INV-4, GEI "If the
 * ledger write fails, the tool does not run", SPEC §4 "writes are durable before they are
 * acknowledged", L7 degraded mode)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.js';
import { DEMO_CLIENT, initDataDir, readClientFile, startEmbedded } from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import type { FileSync } from '../../src/kernel/index.js';

let dir: string;
let instance: EmbeddedInstance;
let runs = 0;
let armed = false;
const syncs: string[] = [];

const eio = (): Error => Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });

/** The real fsync, failing with EIO when `fails(path)` says so at its start (paths by descriptor). */
function failing(
  real: FileSync,
  fails: (path: string) => boolean,
  onSync?: (path: string) => void,
): FileSync {
  const opened = new Map<number, string>();
  const path = (fd: number): string => opened.get(fd) ?? '?';
  return {
    open(p) {
      const fd = real.open(p);
      opened.set(fd, p);
      return fd;
    },
    sync(fd) {
      onSync?.(path(fd));
      return fails(path(fd)) ? Promise.reject(eio()) : real.sync(fd);
    },
    syncNow(fd) {
      if (fails(path(fd))) throw eio();
      real.syncNow(fd);
    },
    close: (fd) => real.close(fd),
  };
}

/** The real fsync, failing with EIO while armed. */
const failWhenArmed = (real: FileSync): FileSync =>
  failing(
    real,
    () => armed,
    (p) => syncs.push(p),
  );

beforeAll(async () => {
  dir = join(mkdtempSync(join(tmpdir(), 'fc-wal-sync-')), 'data');
  await initDataDir(dir);
  instance = await startEmbedded(dir, {
    port: 0,
    executionPort: 0,
    onToolRun: () => void (runs += 1),
    decorate: { fileSync: failWhenArmed },
  });
});

afterAll(async () => {
  await instance.close();
  rmSync(join(dir, '..'), { recursive: true, force: true });
});

function client() {
  const f = readClientFile(dir, DEMO_CLIENT.identity);
  return createClient({ url: instance.url, identity: f.identity, tenant: f.tenant, key: f.key });
}

describe('a failed fsync of the log stops the deployment until restart', () => {
  it('calls are acknowledged only after the log was synced off the event loop', async () => {
    syncs.length = 0;
    expect((await client().call('echo', { message: 'synced' })).outcome).toBe('executed');
    expect(syncs.filter((p) => p.endsWith('ledger.db-wal')).length).toBeGreaterThan(0);
  });

  it('the call whose decision is not durable denies, its tool never runs, and every later call denies', async () => {
    const agent = client();
    const runsBefore = runs;
    armed = true;
    const r = await agent.call('echo', { message: 'not durable' });
    armed = false;
    expect(r.outcome).toBe('deny');
    expect(r.outcome === 'deny' && r.code).toBe('ERR_LEDGER_UNAVAILABLE');
    // The disk is healthy again, but what it holds is unknown: nothing is served, and the ledger
    // does not take what the connection holds for committed.
    const size = instance.core.ledger.size();
    const later = await agent.call('echo', { message: 'after the failure' });
    expect(later.outcome).toBe('deny');
    expect(instance.core.ledger.size()).toBe(size);
    expect(runs).toBe(runsBefore);
    const ready = await fetch(new URL('/readyz', instance.url));
    expect(ready.status).toBe(503);
  });

  it('a restarted gate recovers the log from disk and serves again', async () => {
    await instance.close();
    instance = await startEmbedded(dir, { port: 0, executionPort: 0, onToolRun: () => void (runs += 1) });
    const runsBefore = runs;
    expect((await client().call('echo', { message: 'restarted' })).outcome).toBe('executed');
    expect(runs).toBe(runsBefore + 1);
  });
});

/**
 * The real fsync, failing once: the first fsync of the log that begins after `covers` (a query on
 * a reader of the ledger file) sees the commit it waits for. So exactly the commit that holds
 * that write is not made durable, whatever commits came before it in the call.
 */
function failTheSyncCovering(ledgerDb: string): {
  decorate: (real: FileSync) => FileSync;
  arm(covers: string): void;
  failed(): boolean;
} {
  let covers: string | undefined;
  let baseline = 0;
  let failed = false;
  const count = (sql: string): number => {
    const r = new Database(ledgerDb, { readonly: true });
    try {
      return (r.prepare(sql).get() as { n: number }).n;
    } finally {
      r.close();
    }
  };
  const due = (path: string): boolean => {
    if (covers === undefined || !path.endsWith('-wal') || count(covers) <= baseline) return false;
    covers = undefined;
    failed = true;
    return true;
  };
  return {
    decorate: (real) => failing(real, due),
    arm(query) {
      baseline = count(query);
      covers = query;
    },
    failed: () => failed,
  };
}

describe('a failed fsync of exactly the commit a governed call waits for', () => {
  for (const [what, covers, consumed] of [
    [
      'the decision and its envelope issuance',
      "SELECT count(*) AS n FROM entries WHERE type = 'envelope.issued'",
      false,
    ],
    ['the envelope nonce consumed before the tool', 'SELECT count(*) AS n FROM envelope_nonces', true],
  ] as const) {
    it(`${what}: the call denies, its tool never runs, and a restart closes its request with no receipt`, async () => {
      const root = mkdtempSync(join(tmpdir(), 'fc-wal-sync-one-'));
      const data = join(root, 'data');
      let ran = 0;
      let requestId: string | null | undefined;
      try {
        await initDataDir(data);
        const fault = failTheSyncCovering(join(data, 'ledger.db'));
        let gate = await startEmbedded(data, {
          port: 0,
          executionPort: 0,
          onToolRun: () => void (ran += 1),
          decorate: { fileSync: fault.decorate },
        });
        const f = readClientFile(data, DEMO_CLIENT.identity);
        const agent = (url: string) =>
          createClient({ url, identity: f.identity, tenant: f.tenant, key: f.key });
        try {
          expect((await agent(gate.url).call('echo', { message: 'before' })).outcome).toBe('executed');
          expect(ran).toBe(1);
          fault.arm(covers);
          const r = await agent(gate.url).call('echo', { message: 'not durable' });
          expect(fault.failed()).toBe(true);
          expect(r.outcome).toBe('deny');
          expect(r.outcome === 'deny' && r.code).toMatch(/^ERR_(LEDGER|NONCE_STORE)_UNAVAILABLE$/);
          expect(ran).toBe(1);
          requestId = r.request_id;
        } finally {
          await gate.close();
        }
        // Restarted: the call's request is still open in the ledger, and the start closes it.
        gate = await startEmbedded(data, { port: 0, executionPort: 0, onToolRun: () => void (ran += 1) });
        try {
          const entries = await gate.core.ledger.store.readRange(0, gate.core.ledger.size());
          const mine = entries.filter((e) => e.request_id === requestId);
          // Closed with no receipt: abandoned, with whether its envelope was consumed (the nonce
          // row the restart found makes it "may have run", never "never ran").
          expect(mine.map((e) => e.type)).toEqual([
            'gateway.accepted',
            'decision',
            'envelope.issued',
            'request.abandoned',
          ]);
          expect(mine.at(-1)?.payload['envelope_consumed']).toBe(consumed);
          expect((await agent(gate.url).call('echo', { message: 'after' })).outcome).toBe('executed');
          expect(ran).toBe(2);
        } finally {
          await gate.close();
        }
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });
  }
});
