/**
 * One ledger per data directory (src/embedded/ledger-binding.ts, docs/storage.md "One ledger per
 * data directory"; SPEC §4, L7 ledger protection). A data directory's checkpoint key and origin
 * sign one ledger; before this binding, the same directory opened over another store (another
 * `FAILCLOSED_BACKEND`, a recreated database, a deleted `ledger.db`) served and would sign a
 * second history under the same key, which `verify` with the pinned key accepts just the same.
 * Every such open is refused before anything is written to that store; the directory's own store,
 * a copy of the directory (a replica) and a directory made before the binding still open. So is a
 * store rolled back behind the largest checkpoint the directory signed (a restored backup).
 */
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initDataDir, readOperatorToken, startEmbedded } from '../../src/embedded/index.js';
import {
  LEDGER_BINDING_FILE,
  LedgerBindingError,
  createCheckpointMemory,
  readLedgerBindingFile,
  writeLedgerBindingFile,
} from '../../src/embedded/ledger-binding.js';
import { useTestDatabase } from '../support/postgres.js';
import { clientOf } from '../e2e/postgres-support.js';

const pgdb = useTestDatabase('fc_ledger_binding');
let work: string;
/** A data directory made by `init` on SQLite, copied by each case. */
let template: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fc-ledger-binding-'));
  template = join(work, 'template');
  await initDataDir(template);
}, 60_000);
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

let seq = 0;
function copyOf(source: string): string {
  seq += 1;
  const d = join(work, `d${seq}`);
  cpSync(source, d, { recursive: true });
  return d;
}

/** entry 0's hash in a data directory's SQLite ledger. */
function firstEntryHash(dir: string): string {
  const db = new Database(join(dir, 'ledger.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT entry_hash FROM entries WHERE idx = 0').get() as { entry_hash: string })
      .entry_hash;
  } finally {
    db.close();
  }
}

function ledgerRows(dir: string): number {
  const db = new Database(join(dir, 'ledger.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM entries').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** Rows of `table` (schema-qualified) in the test database. */
async function pgRows(table: string): Promise<number> {
  const c = new pg.Client({ connectionString: pgdb.url });
  await c.connect();
  try {
    const { rows } = await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`);
    return Number(rows[0]?.n);
  } finally {
    await c.end();
  }
}

function binding(dir: string): unknown {
  return JSON.parse(readFileSync(join(dir, LEDGER_BINDING_FILE), 'utf8'));
}

/** Opens and closes the deployment; the refusal when it does not open. */
async function open(dir: string, backend?: string): Promise<Error | undefined> {
  try {
    const instance = await startEmbedded(dir, { port: 0, ...(backend === undefined ? {} : { backend }) });
    await instance.close();
    return undefined;
  } catch (err) {
    return err as Error;
  }
}

describe('one ledger per data directory', () => {
  it('init binds the directory to the first entry of the ledger it made; that store opens', async () => {
    expect(binding(template)).toEqual({ version: 1, first_entry_hash: firstEntryHash(template) });
    expect(await open(copyOf(template))).toBeUndefined();
  });

  it('refuses the keys over a fresh PostgreSQL database (FAILCLOSED_BACKEND pointed elsewhere): nothing is written there', async () => {
    const dir = copyOf(template);
    const url = `${pgdb.url}?schema=fork`;
    const err = await open(dir, url);
    expect(err).toBeInstanceOf(LedgerBindingError);
    expect(err?.message).toMatch(
      /holds no ledger, but the keys of .* sign the ledger whose first entry is [0-9a-f]{64}/,
    );
    expect(err?.message).toContain('fork');
    expect(await pgRows('fork.ledger_entries')).toBe(0);
    // Its own store still opens.
    expect(await open(dir)).toBeUndefined();
  }, 60_000);

  it('refuses a deleted ledger.db (a "fresh start" under the same keys) before creating one', async () => {
    const dir = copyOf(template);
    for (const f of ['ledger.db', 'ledger.db-wal', 'ledger.db-shm']) rmSync(join(dir, f), { force: true });
    const err = await open(dir);
    expect(err).toBeInstanceOf(LedgerBindingError);
    expect(err?.message).toContain('holds no ledger');
    expect(existsSync(join(dir, 'ledger.db'))).toBe(false);
  });

  it('a directory of the layout before one file, without its ledger.db: refused, its other files neither merged nor renamed', async () => {
    const dir = copyOf(template);
    unlinkSync(join(dir, LEDGER_BINDING_FILE));
    for (const f of ['ledger.db', 'ledger.db-wal', 'ledger.db-shm']) rmSync(join(dir, f), { force: true });
    writeFileSync(join(dir, 'state.db'), 'the old layout');
    const err = await open(dir);
    expect(err).toBeInstanceOf(LedgerBindingError);
    expect(existsSync(join(dir, 'ledger.db'))).toBe(false);
    expect(readFileSync(join(dir, 'state.db'), 'utf8')).toBe('the old layout');
  });

  it("refuses another deployment's ledger", async () => {
    const other = join(work, 'other');
    await initDataDir(other);
    const dir = copyOf(template);
    cpSync(join(other, 'ledger.db'), join(dir, 'ledger.db'));
    const before = ledgerRows(dir);
    const err = await open(dir);
    expect(err).toBeInstanceOf(LedgerBindingError);
    expect(err?.message).toContain(`holds another ledger (first entry ${firstEntryHash(other)})`);
    expect(ledgerRows(dir)).toBe(before);
  }, 60_000);

  it('an unbound directory is bound only once its whole open succeeded: a ledger.db refused after the proof (its issuer keys) binds nothing', async () => {
    // Another deployment whose ledger records an issuer key rotation: no checkpoint yet.
    const other = join(work, 'other-unbound');
    await initDataDir(other);
    const running = await startEmbedded(other, { port: 0 });
    try {
      const rotated = await fetch(`${running.url}/v1/admin/issuer-rotate`, {
        method: 'POST',
        headers: { authorization: `Bearer ${readOperatorToken(other)}`, 'content-type': 'application/json' },
        body: JSON.stringify({ reason: 'scheduled' }),
      });
      expect(rotated.status).toBe(200);
    } finally {
      await running.close();
    }
    const dir = copyOf(template);
    unlinkSync(join(dir, LEDGER_BINDING_FILE));
    const own = join(work, `own-${seq}.db`);
    cpSync(join(dir, 'ledger.db'), own);
    cpSync(join(other, 'ledger.db'), join(dir, 'ledger.db'));
    const err = await open(dir);
    expect(err?.message).toMatch(/issuer key/);
    expect(existsSync(join(dir, LEDGER_BINDING_FILE))).toBe(false);
    // Its own ledger put back, it opens and is bound to it.
    cpSync(own, join(dir, 'ledger.db'));
    expect(await open(dir)).toBeUndefined();
    expect(binding(dir)).toEqual({ version: 1, first_entry_hash: firstEntryHash(dir) });
  }, 60_000);

  it('a directory made before the binding is bound to its store at its first open', async () => {
    const dir = copyOf(template);
    unlinkSync(join(dir, LEDGER_BINDING_FILE));
    expect(await open(dir)).toBeUndefined();
    expect(binding(dir)).toEqual({ version: 1, first_entry_hash: firstEntryHash(dir) });
  });

  it('refuses an unbound directory over an empty store: every init left entries behind', async () => {
    const dir = copyOf(template);
    unlinkSync(join(dir, LEDGER_BINDING_FILE));
    const err = await open(dir, `${pgdb.url}?schema=unbound_empty`);
    expect(err).toBeInstanceOf(LedgerBindingError);
    expect(err?.message).toContain('names none it signs');
    expect(existsSync(join(dir, LEDGER_BINDING_FILE))).toBe(false);
  });

  it('refuses a binding file it cannot read, whatever the store', async () => {
    const h = '0'.repeat(64);
    for (const text of [
      '{',
      '{"version":1}',
      `{"version":2,"first_entry_hash":"${h}"}`,
      `{"version":1,"first_entry_hash":"${h}","other":1}`,
      `{"version":1,"first_entry_hash":"${h}","checkpoint":{"size":0,"root_hash":"${h}"}}`,
      `{"version":1,"first_entry_hash":"${h}","checkpoint":{"size":2,"root_hash":"xyz"}}`,
    ]) {
      const dir = copyOf(template);
      writeFileSync(join(dir, LEDGER_BINDING_FILE), text);
      const err = await open(dir);
      expect(err).toBeInstanceOf(LedgerBindingError);
      expect(err?.message).toMatch(/cannot be read|is malformed/);
    }
  });

  it('refuses a store rolled back behind the largest checkpoint the directory signed (a restored backup): no second root at that size', async () => {
    const dir = copyOf(template);
    const files = ['ledger.db', 'ledger.db-wal', 'ledger.db-shm'];
    const backup = join(work, `backup-${seq}`);
    cpSync(dir, backup, { recursive: true });
    const instance = await startEmbedded(dir, { port: 0 });
    let signed: { size: number; root_hash: string };
    try {
      const client = clientOf(dir, instance);
      for (let i = 0; i < 2; i += 1)
        expect((await client.call('echo', { message: `m${i}` })).outcome).toBe('executed');
      const cp = await instance.core.ledger.checkpoint();
      signed = { size: cp.size, root_hash: cp.root_hash };
      // An export's smaller checkpoint never lowers what is remembered.
      await instance.core.ledger.checkpoint(cp.size - 1);
    } finally {
      await instance.close();
    }
    expect(binding(dir)).toEqual({ version: 1, first_entry_hash: firstEntryHash(dir), checkpoint: signed });
    // The directory's own store, as it was left, opens. A file that remembers no checkpoint yet (one
    // written before the memory, or whose write was lost) remembers the one the open verified.
    writeFileSync(
      join(dir, LEDGER_BINDING_FILE),
      JSON.stringify({ version: 1, first_entry_hash: firstEntryHash(dir) }),
    );
    expect(await open(dir)).toBeUndefined();
    expect(binding(dir)).toEqual({ version: 1, first_entry_hash: firstEntryHash(dir), checkpoint: signed });
    const before = ledgerRows(backup);
    for (const f of files) {
      rmSync(join(dir, f), { force: true });
      if (existsSync(join(backup, f))) cpSync(join(backup, f), join(dir, f));
    }
    const err = await open(dir);
    expect(err).toBeInstanceOf(LedgerBindingError);
    expect(err?.message).toContain(`holds ${before} entries, but`);
    expect(err?.message).toContain(`signed a checkpoint of this ledger at size ${signed.size}`);
    expect(ledgerRows(dir)).toBe(before);
    // Other entries up to the remembered size (a rewritten store) are refused too.
    const other = copyOf(dir);
    writeFileSync(
      join(other, LEDGER_BINDING_FILE),
      JSON.stringify({
        version: 1,
        first_entry_hash: firstEntryHash(other),
        checkpoint: { size: 1, root_hash: 'ab'.repeat(32) },
      }),
    );
    const rewritten = await open(other);
    expect(rewritten).toBeInstanceOf(LedgerBindingError);
    expect(rewritten?.message).toContain('holds other entries up to size 1');
  }, 60_000);

  it("an unbound directory over another deployment's PostgreSQL ledger: refused without a checkpoint proving it, refused by the checkpoint's key with one; never bound, nothing signed", async () => {
    // B: another deployment's ledger, no checkpoint yet (a few entries within 10 s).
    const b = join(work, 'b-on-pg');
    const url = `${pgdb.url}?schema=b_ledger`;
    await initDataDir(b, { backend: url });
    const a = copyOf(template);
    unlinkSync(join(a, LEDGER_BINDING_FILE));
    const err = await open(a, url);
    expect(err).toBeInstanceOf(LedgerBindingError);
    expect(err?.message).toContain('holds no checkpoint that would show its ledger is this directory');
    expect(err?.message).toContain('"first_entry_hash"');
    expect(existsSync(join(a, LEDGER_BINDING_FILE))).toBe(false);
    expect(await pgRows('b_ledger.ledger_checkpoints')).toBe(0);
    // B signs a checkpoint: A's open is refused by its key, and still binds nothing.
    const instance = await startEmbedded(b, { port: 0 });
    try {
      await instance.core.ledger.checkpoint();
    } finally {
      await instance.close();
    }
    const signed = await open(a, url);
    expect(signed?.message).toContain("not signed by this ledger's key");
    expect(existsSync(join(a, LEDGER_BINDING_FILE))).toBe(false);
    // B, unbound too, is bound by its own checkpoint.
    unlinkSync(join(b, LEDGER_BINDING_FILE));
    expect(await open(b)).toBeUndefined();
    expect(binding(b)).toMatchObject({ version: 1 });
  }, 60_000);

  it('on PostgreSQL: init binds, a copy of the directory (a replica) opens, the SQLite default is refused', async () => {
    const dir = join(work, 'on-pg');
    const url = `${pgdb.url}?schema=bound`;
    await initDataDir(dir, { backend: url });
    expect(binding(dir)).toMatchObject({ version: 1 });
    expect(await open(copyOf(dir))).toBeUndefined();
    const err = await open(dir, 'sqlite');
    expect(err).toBeInstanceOf(LedgerBindingError);
    expect(err?.message).toContain('the storage (sqlite) holds no ledger');
  }, 60_000);

  describe('the checkpoint memory (the binding file a deployment or ledger process keeps)', () => {
    const FIRST = 'ef'.repeat(32);
    const cp = (size: number) => ({ size, root_hash: size.toString(16).padStart(64, '0') });
    const bindingIn = async (): Promise<string> => {
      const path = join(mkdtempSync(join(tmpdir(), 'fc-memory-')), LEDGER_BINDING_FILE);
      await writeLedgerBindingFile(path, { version: 1, first_entry_hash: FIRST });
      return path;
    };

    it('record resolves once the file holds the checkpoint; nothing is recorded before bound or after close', async () => {
      const path = await bindingIn();
      const errors: unknown[] = [];
      const memory = createCheckpointMemory(path, (e) => errors.push(e));
      await expect(memory.record(cp(4))).rejects.toThrow(/not open/);
      memory.bound({ version: 1, first_entry_hash: FIRST });
      await memory.record(cp(8));
      expect(readLedgerBindingFile(path, 'this test')?.checkpoint).toEqual(cp(8));
      // Already held: resolves at once.
      await memory.record(cp(6));
      memory.close();
      await expect(memory.record(cp(12))).rejects.toThrow(/not open/);
      expect(readLedgerBindingFile(path, 'this test')?.checkpoint).toEqual(cp(8));
      expect(errors).toEqual([]);
    });

    it('a write that fails rejects its record, is reported, and leaves the checkpoint before it', async () => {
      const path = await bindingIn();
      const errors: unknown[] = [];
      const memory = createCheckpointMemory(path, (e) => errors.push(e));
      memory.bound({ version: 1, first_entry_hash: FIRST });
      await memory.record(cp(10));
      // The directory is gone (a volume lost): the next record cannot be written.
      rmSync(join(path, '..'), { recursive: true, force: true });
      await expect(memory.record(cp(20))).rejects.toThrow(/ENOENT/);
      expect(errors).toHaveLength(1);
      // A later record is tried again, not taken as covered by the one that failed; once the
      // directory is back, it is written, and so is what is remembered after it.
      await expect(memory.record(cp(15))).rejects.toThrow(/ENOENT/);
      expect(errors).toHaveLength(2);
      mkdirSync(join(path, '..'));
      await memory.record(cp(16));
      memory.remember(cp(17));
      await memory.settled();
      expect(readLedgerBindingFile(path, 'this test')?.checkpoint).toEqual(cp(17));
    });
  });
});
