/**
 * Named prepared statements on the PostgreSQL backend's connections (`prepared.ts`, docs/storage.md
 * "Prepared statements"): a statement with parameters is parsed once per connection, a statement
 * without runs as before, the server holds a bounded number of them per connection, and a
 * statement that failed is parsed afresh next time (a schema change under it, a reset
 * connection, a parameter type widened). One the server refused before running it, outside a
 * transaction, is sent once more; inside one, that call fails (fail closed) and the next recovers.
 */
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { openPostgresPool, type PostgresPool } from '../../src/storage/postgres/index.js';
import { prepareStatements } from '../../src/storage/postgres/prepared.js';
import { nextSchema, useTestDatabase } from '../support/postgres.js';

const pgdb = useTestDatabase();
const clients: pg.Client[] = [];
const pools: PostgresPool[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) await c.end();
  for (const p of pools.splice(0)) await p.close();
});

/** A connection with its statements prepared, and the names its server session holds. */
async function connection(max?: number): Promise<{ c: pg.Client; held: () => Promise<string[]> }> {
  const c = new pg.Client({ connectionString: pgdb.url });
  await c.connect();
  clients.push(c);
  prepareStatements(c, max);
  const held = async (): Promise<string[]> =>
    (await c.query<{ name: string }>('SELECT name FROM pg_prepared_statements ORDER BY name')).rows.map(
      (r) => r.name,
    );
  return { c, held };
}

/** Counts the Parse messages `c` sends while `fn` runs. */
async function parses(c: pg.Client, fn: () => Promise<unknown>): Promise<number> {
  const conn = (c as unknown as { connection: { parse: (...a: unknown[]) => unknown } }).connection;
  const parse = conn.parse;
  let n = 0;
  conn.parse = (...a: unknown[]) => {
    n += 1;
    return parse.apply(conn, a);
  };
  try {
    await fn();
  } finally {
    conn.parse = parse;
  }
  return n;
}

/**
 * A table of one row, read once through `c` (so the read is prepared), then given a column: the
 * prepared read's result shape no longer holds. Returns the read's text.
 */
async function readPreparedThenAltered(c: pg.Client): Promise<string> {
  const table = nextSchema();
  await c.query(`CREATE TABLE ${table} (a int)`);
  await c.query(`INSERT INTO ${table} VALUES (1)`);
  const read = `SELECT * FROM ${table} WHERE a = $1`;
  expect((await c.query(read, [1])).rows).toEqual([{ a: 1 }]);
  await c.query(`ALTER TABLE ${table} ADD COLUMN b int`);
  return read;
}

describe('prepared statements on PostgreSQL connections (SPEC §8, docs/storage.md)', () => {
  it('parses a statement with parameters once per connection, under a name of failclosed; one without is not prepared', async () => {
    const { c, held } = await connection();
    const sent = await parses(c, async () => {
      for (let i = 0; i < 5; i += 1) {
        const r = await c.query<{ v: number }>('SELECT $1::int + 1 AS v', [i]);
        expect(r.rows[0]!.v).toBe(i + 1);
      }
    });
    expect(sent).toBe(1);
    const names = await held();
    expect(names).toHaveLength(1);
    expect(names[0]).toMatch(/^failclosed_[0-9a-f]{8}_1$/);
    await c.query('SELECT 42 AS v');
    expect(await held()).toEqual(names);
  });

  it('a connection prepares at most its bound of texts; past it, statements still answer, unnamed', async () => {
    const { c, held } = await connection(2);
    for (let i = 0; i < 4; i += 1) {
      const r = await c.query<{ v: number }>(`SELECT $1::int + ${i} AS v`, [10]);
      expect(r.rows[0]!.v).toBe(10 + i);
    }
    expect(await held()).toHaveLength(2);
  });

  it('a schema change under a prepared statement, outside a transaction: the call is parsed afresh and answers', async () => {
    const { c, held } = await connection();
    const read = await readPreparedThenAltered(c);
    // Refused by the server before it ran (0A000), then sent once more under a new name.
    expect((await c.query(read, [1])).rows).toEqual([{ a: 1, b: null }]);
    // The refused statement was let go: the server holds the new one only.
    await expect.poll(held).toHaveLength(1);
  });

  it('FC-INV-4: the same inside a transaction fails that call (the caller denies); the next one is parsed afresh', async () => {
    const { c } = await connection();
    const read = await readPreparedThenAltered(c);
    await c.query('BEGIN');
    await expect(c.query(read, [1])).rejects.toMatchObject({ code: '0A000' });
    await c.query('ROLLBACK');
    expect((await c.query(read, [1])).rows).toEqual([{ a: 1, b: null }]);
  });

  it('FC-INV-4: a parameter type widened under a prepared statement fails that call once; the next is parsed afresh', async () => {
    const { c } = await connection();
    const table = nextSchema();
    await c.query(`CREATE TABLE ${table} (n int)`);
    const put = `INSERT INTO ${table} (n) VALUES ($1)`;
    await c.query(put, [1]);
    await c.query(`ALTER TABLE ${table} ALTER COLUMN n TYPE bigint`);
    const big = 2 ** 40;
    // The statement kept the int4 parameter of its first parse: out of range, nothing written.
    await expect(c.query(put, [big])).rejects.toMatchObject({ code: '22003' });
    await c.query(put, [big]);
    expect((await c.query(`SELECT n FROM ${table} ORDER BY n`)).rows).toEqual([
      { n: '1' },
      { n: String(big) },
    ]);
  });

  it('a connection that lost its statements (DEALLOCATE ALL, a pooler reset) sends the call again, parsed afresh', async () => {
    const { c } = await connection();
    expect((await c.query('SELECT $1::text AS v', ['x'])).rows).toEqual([{ v: 'x' }]);
    await c.query('DEALLOCATE ALL');
    expect((await c.query('SELECT $1::text AS v', ['y'])).rows).toEqual([{ v: 'y' }]);
  });

  it('an error of the data (a unique key) keeps the statement: the next call is not parsed again', async () => {
    const { c, held } = await connection();
    const table = nextSchema();
    await c.query(`CREATE TABLE ${table} (k int PRIMARY KEY)`);
    const put = `INSERT INTO ${table} (k) VALUES ($1)`;
    await c.query(put, [1]);
    const before = await held();
    const sent = await parses(c, async () => {
      await expect(c.query(put, [1])).rejects.toMatchObject({ code: '23505' });
      await c.query(put, [2]);
    });
    expect(sent).toBe(0);
    expect(await held()).toEqual(before);
  });

  it('statements dropped after failures are deallocated: the server holds the live ones only, within the bound', async () => {
    const { c, held } = await connection(3);
    for (let i = 0; i < 10; i += 1) {
      // A statement the server refuses at parse: dropped each time.
      await expect(c.query(`SELECT $1::int + no_such_column_${i}`, [1])).rejects.toMatchObject({
        code: '42703',
      });
    }
    expect((await c.query('SELECT $1::int AS v', [7])).rows).toEqual([{ v: 7 }]);
    await expect.poll(held).toHaveLength(1);
  });

  it('a statement dropped inside a failed transaction is deallocated once the transaction ended', async () => {
    const { c, held } = await connection();
    const table = nextSchema();
    await c.query(`CREATE TABLE ${table} (n int)`);
    const put = `INSERT INTO ${table} (n) VALUES ($1)`;
    await c.query(put, [1]);
    await c.query(`ALTER TABLE ${table} ALTER COLUMN n TYPE bigint`);
    await c.query('BEGIN');
    await expect(c.query(put, [2 ** 40])).rejects.toMatchObject({ code: '22003' });
    await c.query('ROLLBACK');
    await c.query(put, [2 ** 40]);
    // The statement of the int4 parameter is gone; the one parsed afresh stays.
    await expect.poll(held).toHaveLength(1);
  });

  it("every connection of the backend's pool prepares its statements (pool.query's callback form included)", async () => {
    const db = openPostgresPool({ url: pgdb.url, schema: nextSchema(), max: 1 });
    pools.push(db);
    for (let i = 0; i < 3; i += 1)
      expect((await db.pool.query('SELECT $1::int AS v', [i])).rows).toEqual([{ v: i }]);
    const c = await db.pool.connect();
    try {
      const names = (await c.query<{ name: string }>('SELECT name FROM pg_prepared_statements')).rows;
      expect(names.map((r) => r.name)).toEqual([expect.stringMatching(/^failclosed_/)]);
    } finally {
      c.release();
    }
  });
});
