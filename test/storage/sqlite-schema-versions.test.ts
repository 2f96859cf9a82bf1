/**
 * Every embedded SQLite store records its schema version (SPEC §4; L7 ledger protection: the
 * ledger's file is never written by a build that does not know its schema), run against each
 * store: a new file reaches the newest version, a reopen applies nothing, a file recorded at a
 * newer version is refused and left as it was (fail closed), and the four stores of `state.db`
 * keep one version each in the shared file.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { createSqliteApprovalStore, createSqliteGovernanceState } from '../../src/control-plane/index.js';
import { createSqliteNonceStore } from '../../src/execution/index.js';
import { createSqliteGateState, createSqliteOperatorStore } from '../../src/gate/index.js';
import { SchemaVersionError } from '../../src/kernel/index.js';
import { createSqliteLedgerStore } from '../../src/ledger/index.js';
import { createSqliteBreakerStore } from '../../src/storage/index.js';

const dir = mkdtempSync(join(tmpdir(), 'fc-schema-versions-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let seq = 0;
const nextPath = (): string => join(dir, `store-${++seq}.db`);

/** A store under test: its name in `failclosed_schema`, its newest version, and how to open and close it. */
interface VersionedStore {
  readonly store: string;
  readonly version: number;
  open(path: string): () => Promise<unknown>;
}

const STORES: readonly VersionedStore[] = [
  {
    store: 'operators',
    version: 2,
    open: (path) => {
      const s = createSqliteOperatorStore(path);
      return () => s.close();
    },
  },
  {
    store: 'ledger',
    version: 2,
    open: (path) => {
      const s = createSqliteLedgerStore({ path });
      return () => s.close();
    },
  },
  {
    store: 'gate_state',
    version: 1,
    open: (path) => {
      const s = createSqliteGateState({ path });
      return () => s.close();
    },
  },
  {
    store: 'governance',
    version: 1,
    open: (path) => {
      const s = createSqliteGovernanceState(path);
      return () => Promise.resolve(s.close());
    },
  },
  {
    store: 'breakers',
    version: 3,
    open: (path) => {
      const s = createSqliteBreakerStore(path);
      return () => Promise.resolve(s.close());
    },
  },
  {
    store: 'approvals',
    version: 6,
    open: (path) => {
      const s = createSqliteApprovalStore(path);
      return () => Promise.resolve(s.close());
    },
  },
  {
    store: 'envelope_nonces',
    version: 1,
    open: (path) => {
      const s = createSqliteNonceStore({ path, now: () => 0 });
      return () => s.close();
    },
  },
];

interface VersionRow {
  readonly store: string;
  readonly version: number;
  readonly name: string;
  readonly applied_at: string;
}

/** The version rows of a file, read on a connection of the test's own. */
function versionRows(path: string): VersionRow[] {
  const db = new Database(path, { readonly: true });
  try {
    return db
      .prepare<[], VersionRow>(
        'SELECT store, version, name, applied_at FROM failclosed_schema ORDER BY store, version',
      )
      .all();
  } finally {
    db.close();
  }
}

async function openAndClose(s: VersionedStore, path: string): Promise<void> {
  await s.open(path)();
}

describe.each(STORES)('SQLite store $store: schema version (SPEC §4, L7)', (s) => {
  it('a new file is recorded at the newest version', async () => {
    const path = nextPath();
    await openAndClose(s, path);
    const rows = versionRows(path);
    expect(rows.map((r) => [r.store, r.version])).toEqual(
      Array.from({ length: s.version }, (_, i) => [s.store, i + 1]),
    );
  });

  it('a reopen applies nothing: the version rows are unchanged', async () => {
    const path = nextPath();
    await openAndClose(s, path);
    const first = versionRows(path);
    await openAndClose(s, path);
    await openAndClose(s, path);
    expect(versionRows(path)).toEqual(first);
  });

  it('a file recorded at a newer version is refused, and left as it was', async () => {
    const path = nextPath();
    await openAndClose(s, path);
    const db = new Database(path);
    db.prepare('INSERT INTO failclosed_schema (store, version, name) VALUES (?, ?, ?)').run(
      s.store,
      s.version + 1,
      'from a newer build',
    );
    db.close();
    const before = versionRows(path);
    expect(() => s.open(path)).toThrow(SchemaVersionError);
    expect(versionRows(path)).toEqual(before);
  });

  it('another store recorded at a newer version in the same file does not block it', async () => {
    const path = nextPath();
    await openAndClose(s, path);
    const db = new Database(path);
    db.prepare('INSERT INTO failclosed_schema (store, version, name) VALUES (?, ?, ?)').run(
      'another_store',
      99,
      'not ours',
    );
    db.close();
    await openAndClose(s, path);
    expect(versionRows(path).filter((r) => r.store === s.store)).toHaveLength(s.version);
  });
});

describe('SQLite schema versions of a shared file and of read-only opens (SPEC §4, L7)', () => {
  it('the four stores of state.db each record their own version in the one file', async () => {
    const path = nextPath();
    for (const s of STORES.filter((x) =>
      ['gate_state', 'governance', 'breakers', 'approvals'].includes(x.store),
    ))
      await openAndClose(s, path);
    expect(versionRows(path).map((r) => [r.store, r.version])).toEqual([
      ['approvals', 1],
      ['approvals', 2],
      ['approvals', 3],
      ['approvals', 4],
      ['approvals', 5],
      ['approvals', 6],
      ['breakers', 1],
      ['breakers', 2],
      ['breakers', 3],
      ['gate_state', 1],
      ['governance', 1],
    ]);
  });

  it('a read-only ledger open checks the version, writes none, and refuses a newer one', async () => {
    // A file from before versions: the tables, no version table.
    const path = nextPath();
    await createSqliteLedgerStore({ path }).close();
    const old = new Database(path);
    old.exec('DROP TABLE failclosed_schema');
    old.close();
    // It can still be read (exported) without being written.
    const reader = createSqliteLedgerStore({ path, readonly: true });
    await reader.close();
    const check = new Database(path, { readonly: true });
    expect(
      check.prepare("SELECT name FROM sqlite_master WHERE name = 'failclosed_schema'").get(),
    ).toBeUndefined();
    check.close();

    const fresh = nextPath();
    await createSqliteLedgerStore({ path: fresh }).close();
    const db = new Database(fresh);
    db.prepare("INSERT INTO failclosed_schema (store, version, name) VALUES ('ledger', 3, 'newer')").run();
    db.close();
    expect(() => createSqliteLedgerStore({ path: fresh, readonly: true })).toThrow(SchemaVersionError);
  });
});
