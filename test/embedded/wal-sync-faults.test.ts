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

/** The real fsync, failing with EIO while armed. */
const failWhenArmed = (real: FileSync): FileSync => {
  const opened = new Map<number, string>();
  return {
    open(path) {
      const fd = real.open(path);
      opened.set(fd, path);
      return fd;
    },
    sync(fd) {
      syncs.push(opened.get(fd) ?? '?');
      if (armed) return Promise.reject(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
      return real.sync(fd);
    },
    syncNow(fd) {
      if (armed) throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
      real.syncNow(fd);
    },
    close: (fd) => real.close(fd),
  };
};

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
