/**
 * In-place upgrade of a data directory made by the previous release (test/fixtures/data-dir-v0,
 * see its README): its SQLite files have the tables but no schema versions. The current build
 * starts over a copy, records every store's versions from 1 up (SPEC §4; L7 ledger protection: the
 * ledger's rows are read, never rewritten), keeps the clients, approvers, governance state and
 * history, serves governed calls, exports a bundle that verifies offline under the published
 * trust roots, and a second start applies nothing.
 */
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/run.js';
import { createClient } from '../../src/client/index.js';
import { SchemaVersionError } from '../../src/kernel/index.js';
import {
  announceServer,
  readClientFile,
  startEmbedded,
  withdrawServer,
  type EmbeddedInstance,
} from '../../src/embedded/index.js';
import { REPO_ROOT } from '../support/paths.js';

const FIXTURE = join(REPO_ROOT, 'test', 'fixtures', 'data-dir-v0');
/** The first governed call the previous release recorded in the fixture's ledger. */
const FIXTURE_FIRST_REQUEST = 'req_dcuaER0QGR-awrReIuLLwQ';

let dir: string;
let instance: EmbeddedInstance | undefined;

/** A copy of the fixture with the modes `failclosed init` gives secrets (git keeps none). */
function copyFixture(): string {
  const d = mkdtempSync(join(tmpdir(), 'fc-upgrade-'));
  cpSync(FIXTURE, d, { recursive: true });
  chmodSync(d, 0o700);
  for (const sub of ['keys', 'clients', 'approvers']) {
    chmodSync(join(d, sub), 0o700);
    for (const f of readdirSync(join(d, sub))) chmodSync(join(d, sub, f), 0o600);
  }
  chmodSync(join(d, 'operator.token'), 0o600);
  chmodSync(join(d, 'failclosed.json'), 0o600);
  return d;
}

/** Reads one of the data directory's files on a read-only connection of the test's own. */
function read<T>(file: string, fn: (db: Database.Database) => T): T {
  const db = new Database(join(dir, file), { readonly: true, fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

interface VersionRow {
  readonly store: string;
  readonly version: number;
  readonly applied_at: string;
}

/** Every store's version rows, file by file; `undefined` for a file without the version table. */
function versions(files: readonly string[] = ['ledger.db']): Record<string, VersionRow[] | undefined> {
  const out: Record<string, VersionRow[] | undefined> = {};
  for (const file of files)
    out[file] = read(file, (db) =>
      db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'failclosed_schema'").get() === undefined
        ? undefined
        : db
            .prepare<[], VersionRow>(
              'SELECT store, version, applied_at FROM failclosed_schema ORDER BY store, version',
            )
            .all(),
    );
  return out;
}

const entryHashes = (): string[] =>
  read('ledger.db', (db) =>
    db
      .prepare<[], { entry_hash: string }>('SELECT entry_hash FROM entries ORDER BY idx')
      .all()
      .map((r) => r.entry_hash),
  );

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli([...argv, '--data', dir], {
    out: (t) => (out += t),
    err: (t) => (err += t),
    env: {},
  });
  return { code, out, err };
}

async function start(): Promise<EmbeddedInstance> {
  instance = await startEmbedded(dir, { port: 0, executionPort: 0 });
  announceServer(dir, instance.url);
  return instance;
}

async function stop(): Promise<void> {
  withdrawServer(dir);
  await instance?.close();
  instance = undefined;
}

beforeAll(() => {
  dir = copyFixture();
});

afterAll(async () => {
  await stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('upgrade of a data directory made by the previous release (SPEC §4, L7)', () => {
  let before: string[];

  it('the fixture is a pre-versioning data directory with history', () => {
    expect(versions(['ledger.db', 'state.db', 'nonces.db'])).toEqual({
      'ledger.db': undefined,
      'state.db': undefined,
      'nonces.db': undefined,
    });
    before = entryHashes();
    expect(before.length).toBeGreaterThan(10);
    expect(
      read('ledger.db', (db) =>
        db.prepare('SELECT 1 FROM entries WHERE request_id = ?').get(FIXTURE_FIRST_REQUEST),
      ),
    ).toBeDefined();
  });

  it('starts over it, merges state.db and nonces.db into ledger.db, every store at its newest version', async () => {
    await start();
    const v = versions();
    expect(v['ledger.db']?.map((r) => [r.store, r.version])).toEqual([
      ['approvals', 1],
      ['approvals', 2],
      ['approvals', 3],
      ['approvals', 4],
      ['approvals', 5],
      ['approvals', 6],
      ['breakers', 1],
      ['breakers', 2],
      ['breakers', 3],
      ['console', 1],
      ['console', 2],
      ['console', 3],
      ['decision_claims', 1],
      ['decision_claims', 2],
      ['envelope_nonces', 1],
      ['gate_state', 1],
      ['governance', 1],
      ['ledger', 1],
      ['ledger', 2],
      ['operators', 1],
      ['operators', 2],
      ['schedules', 1],
    ]);
    // The old files are kept for the operator under another name, never read again.
    for (const file of ['state.db', 'nonces.db']) {
      expect(existsSync(join(dir, file))).toBe(false);
      expect(existsSync(join(dir, `${file}.merged`))).toBe(true);
    }
    expect(
      read('ledger.db', (db) => db.prepare('SELECT file FROM failclosed_merged ORDER BY file').all()),
    ).toEqual([{ file: 'nonces.db' }, { file: 'state.db' }]);
  }, 60_000);

  it('keeps the clients, approvers and governance state: governed calls run or deny as before', async () => {
    const url = instance!.url;
    const agent = (name: string) => {
      const f = readClientFile(dir, name);
      return createClient({ url, identity: f.identity, tenant: f.tenant, key: f.key });
    };
    const demo = await agent('demo-agent').call('echo', { message: 'after the upgrade' });
    expect(demo.outcome).toBe('executed');
    const ops = await agent('ops-bot').call('echo', { message: 'ops after the upgrade' });
    expect(ops.outcome).toBe('executed');
    // The quarantine engaged by the previous release still holds.
    const quarantined = await agent('demo-agent').call('echo', { message: 'x' }, { session: 'sess-x' });
    expect(quarantined.outcome === 'deny' && quarantined.code).toBe('ERR_SESSION_QUARANTINED');

    const clients = await cli('clients', 'list');
    expect(clients.code).toBe(0);
    expect(clients.out).toContain('ops-bot');
    const approvers = await cli('approvers', 'list');
    expect(approvers.code).toBe(0);
    // Registered before tenant scopes: global then, recorded as every tenant now (OE-INV-020).
    const listed = JSON.parse(approvers.out) as { approvers: Record<string, unknown>[] };
    expect(listed.approvers.find((a) => a['name'] === 'alice')).toMatchObject({
      tenants: '*',
      status: 'active',
    });
    // The data directory's operator token is the bootstrap operator, of every tenant (OE-INV-025).
    const operators = await cli('operators', 'list');
    expect(operators.code).toBe(0);
    expect((JSON.parse(operators.out) as { operators: unknown[] }).operators).toEqual([
      expect.objectContaining({ name: 'operator', tenants: '*', status: 'active', oidc: null }),
    ]);
    // The previous release kept alice's private key in the data directory: still there, and warned about.
    expect(approvers.err).toContain(join(dir, 'approvers', 'alice.json'));
    expect(approvers.err).toContain('move it');
  }, 60_000);

  it('keeps the history: old entries unchanged, and the export verifies under the trust roots', async () => {
    const after = entryHashes();
    expect(after.slice(0, before.length)).toEqual(before);
    expect(after.length).toBeGreaterThan(before.length);

    const bundle = join(dir, 'audit.json');
    expect((await cli('ledger', 'export', '--out', bundle)).code).toBe(0);
    const roots = await fetch(`${instance!.url}/v1/trust-roots`);
    expect(roots.status).toBe(200);
    const trust = join(dir, 'trust-roots.json');
    writeFileSync(trust, await roots.text());
    let out = '';
    const code = await runCli(['verify', bundle, '--trust', trust], {
      out: (t) => (out += t),
      err: () => undefined,
      env: {},
    });
    expect(code).toBe(0);
    // The bundle spans the previous release's entries and this build's.
    expect(Number(/entries: (\d+)/.exec(out)?.[1])).toBeGreaterThan(before.length);
    expect(readFileSync(bundle, 'utf8')).toContain(FIXTURE_FIRST_REQUEST);
  }, 60_000);

  it('a second start applies no migration', async () => {
    await stop();
    const first = versions();
    await start();
    expect(versions()).toEqual(first);
    const again = await createClient({
      url: instance!.url,
      ...(() => {
        const f = readClientFile(dir, 'demo-agent');
        return { identity: f.identity, tenant: f.tenant, key: f.key };
      })(),
    }).call('echo', { message: 'second start' });
    expect(again.outcome).toBe('executed');
  }, 60_000);

  it('a merge that crashed after its commit only renames the old file at the next start', async () => {
    await stop();
    const clients = () =>
      read('ledger.db', (db) => db.prepare('SELECT count(*) AS n FROM gate_clients').get());
    const count = clients();
    // As if the process died between the merge's commit and the rename.
    renameSync(join(dir, 'state.db.merged'), join(dir, 'state.db'));
    await start();
    expect(existsSync(join(dir, 'state.db'))).toBe(false);
    expect(existsSync(join(dir, 'state.db.merged'))).toBe(true);
    expect(clients()).toEqual(count);
  }, 60_000);

  it('an old file back beside the merged one (an older build, a restored backup) refuses to start', async () => {
    await stop();
    copyFileSync(join(dir, 'state.db.merged'), join(dir, 'state.db'));
    await expect(startEmbedded(dir, { port: 0, executionPort: 0 })).rejects.toThrow(/reappeared/);
    rmSync(join(dir, 'state.db'));
    await start();
    expect(instance).toBeDefined();
  }, 60_000);

  it('a data directory with a store newer than the build does not start, and starts again once it is not', async () => {
    await stop();
    const db = new Database(join(dir, 'ledger.db'));
    db.prepare(
      "INSERT INTO failclosed_schema (store, version, name) VALUES ('governance', 2, 'newer')",
    ).run();
    db.close();
    const entries = entryHashes();
    await expect(startEmbedded(dir, { port: 0, executionPort: 0 })).rejects.toBeInstanceOf(
      SchemaVersionError,
    );
    expect(entryHashes()).toEqual(entries);
    // Nothing was left holding the directory: the same build starts once the row is gone.
    const fix = new Database(join(dir, 'ledger.db'));
    fix.prepare("DELETE FROM failclosed_schema WHERE store = 'governance' AND version = 2").run();
    fix.close();
    await start();
    expect(instance).toBeDefined();
  }, 60_000);
});
