/**
 * A standby on the embedded SQLite deployment, with real processes (SPEC §4 "one writer", L7
 * ledger protection): the data directory's writer lock is held by the kernel for the serving
 * process's life. A second `up` refuses at once; `up --standby` waits without serving, and once
 * the holder is killed with SIGKILL it takes the lock, records what the dead process left open,
 * and serves on the same hash chain.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.js';
import { DEMO_CLIENT, initDataDir, readClientFile } from '../../src/embedded/index.js';
import { runCli, spawnUp, until, type SpawnedUp } from './processes.js';

let work: string;
const children: SpawnedUp[] = [];

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'fc-e2e-standby-'));
});

afterAll(async () => {
  for (const up of children)
    if (up.child.exitCode === null && up.child.signalCode === null) up.child.kill('SIGKILL');
  await Promise.all(children.map((up) => up.exited));
  rmSync(work, { recursive: true, force: true });
}, 30_000);

function tracked(dir: string, extraArgs: readonly string[] = []): SpawnedUp {
  const up = spawnUp(dir, 5, extraArgs);
  children.push(up);
  return up;
}

function clientOf(dir: string, url: string) {
  const file = readClientFile(dir, DEMO_CLIENT.identity);
  return createClient({ url, identity: file.identity, tenant: file.tenant, key: file.key });
}

describe('a standby on one SQLite data directory (SPEC §4 one writer)', () => {
  it('a second up refuses, a standby waits without serving, and takes over after kill -9 of the holder', async () => {
    const dir = join(work, 'data');
    await initDataDir(dir);
    const a = tracked(dir);
    const urlA = await a.listening;
    expect(await clientOf(dir, urlA).call('echo', { message: 'on a' })).toMatchObject({
      outcome: 'executed',
    });

    const second = tracked(dir);
    expect(await second.exited).not.toBe(0);
    expect(second.out()).toMatch(/in use by another process/);
    expect(second.out()).not.toMatch(/listening on/);

    const b = tracked(dir, ['--standby']);
    await until(() => b.out().includes('standby: waiting'), 'the standby to wait', 60_000);
    expect(b.out()).not.toMatch(/listening on/);

    a.child.kill('SIGKILL');
    expect(await a.exited).toBe('SIGKILL');
    const urlB = await b.listening;
    expect(await clientOf(dir, urlB).call('echo', { message: 'on b' })).toMatchObject({
      outcome: 'executed',
    });
    // One chain across the takeover: the export verifies offline against the pinned roots.
    const bundle = join(work, 'bundle.jsonl');
    const trust = join(work, 'trust.json');
    expect(runCli('ledger', 'export', '--out', bundle, '--data', dir).code).toBe(0);
    expect(runCli('trust-roots', '--out', trust, '--data', dir).code).toBe(0);
    expect(runCli('verify', bundle, '--trust', trust).code).toBe(0);
    b.child.kill('SIGTERM');
    expect(await b.exited).toBe(0);
  }, 120_000);
});
