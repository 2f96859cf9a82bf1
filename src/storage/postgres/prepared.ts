/**
 * Named prepared statements on every connection of the PostgreSQL backend (SPEC §8 "durable
 * writes", docs/storage.md "Prepared statements").
 *
 * `pg` sends a statement with parameters as an unnamed one: the server parses and plans its text
 * again at every call. The stores' statements are few and fixed, and some are large (the ledger's
 * append is one statement of several common table expressions), so that work was most of the
 * server's: measured here (`npm run bench:pg-rounds`, sequential calls), PostgreSQL spent
 * 9.5–13.2 ms of CPU per governed call, and 4.7–5.8 ms once each connection had prepared its
 * statements.
 *
 * {@link prepareStatements} makes a connection send every statement that has parameters under a
 * name of its own, so the server parses it once per connection. Without parameters a statement
 * runs as before (transaction control, DDL, migrations). The server holds at most
 * {@link MAX_PREPARED} statements of a connection; past that, further texts run unnamed, so a text
 * built at run time could never grow a connection's statements without bound.
 *
 * **A statement that failed is prepared again.** Unless the error speaks only of the data, a
 * lock, a timeout or the connection ({@link KEEPS_STATEMENT}), the text's name is dropped (and
 * `DEALLOCATE`d), so the next call of that text parses it afresh: a prepared statement keeps
 * the parameter types and result shape of its first parse, and a schema change under it (a
 * migration by another replica) would otherwise fail every later call on that connection. A
 * statement the server refused before running it (its result type changed, SQLSTATE 0A000; it
 * no longer has it after a reset, 26000; the name is taken, 42P05) on a connection outside any
 * transaction is sent once more under a fresh name: nothing of it ran, so the answer is the
 * database's, as if the statement had been sent unnamed. Inside a transaction, or for any other
 * error, the call rejects and its caller denies as for any store error (fail closed). Names carry
 * a random part per connection, so a session that outlived a client (behind a pooler) never
 * holds one of them. Names dropped but not yet deallocated count against the bound.
 * Behind PgBouncer, session pooling is needed anyway (the writer's and the instances' advisory
 * locks live in sessions); PgBouncer's transaction pooling would lose the statements between
 * transactions and every call would be sent twice or deny.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';

/**
 * Statements the server holds for one connection at most, those dropped and not yet deallocated
 * included; further texts run unnamed.
 */
export const MAX_PREPARED = 256;

/**
 * SQLSTATEs of a statement the server refused before running any of it: its cached plan's result
 * type changed (`feature_not_supported`, "cached plan must not change result type", at Bind), it
 * does not have the statement (`invalid_sql_statement_name`, at Bind), or the name is taken
 * (`duplicate_prepared_statement`, at Parse).
 */
const REFUSED_BEFORE_RUNNING = new Set(['0A000', '26000', '42P05']);

/**
 * SQLSTATE classes that say nothing of the statement itself: connection (08), integrity
 * constraint (23, a unique key refusing a second writer's index), transaction rollback (40),
 * resources (53), object state (55, a lock not granted in time), operator intervention (57, the
 * statement timeout) and errors raised by the schema's own functions and triggers (P0).
 */
const KEEPS_STATEMENT = /^(08|23|40|53|55|57|P0)/;

type Query = (...args: unknown[]) => unknown;

/** Marks a client whose `query` {@link prepareStatements} already wraps. */
const PREPARED = Symbol('failclosed.prepared');

const codeOf = (err: unknown): unknown => (err as { code?: unknown } | null)?.code;

/**
 * Makes `client` send each statement with parameters as a named prepared statement (module doc).
 * Idempotent. `max` bounds the statements the server holds for it (default {@link MAX_PREPARED}).
 */
export function prepareStatements(client: pg.ClientBase, max = MAX_PREPARED): void {
  const target = client as unknown as { query: Query; [PREPARED]?: true };
  if (target[PREPARED] === true) return;
  target[PREPARED] = true;
  const query: Query = target.query.bind(client);
  /** Per connection: a name this client gives is never one a session already holds. */
  const tag = randomBytes(4).toString('hex');
  const names = new Map<string, string>();
  let serial = 0;
  /** Names dropped and not yet deallocated: the server may still hold them. */
  const stale: string[] = [];
  /**
   * Deallocates the dropped names, unless a failed transaction is open (it would refuse): then at
   * a later call. A refusal other than "no such statement" keeps the name for later.
   */
  const release = (): void => {
    if (stale.length === 0 || client.getTransactionStatus() === 'E') return;
    for (const name of stale.splice(0)) {
      // No parameters: sent as it is.
      (query(`DEALLOCATE ${name}`) as Promise<unknown>).catch((err: unknown) => {
        if (codeOf(err) !== '26000') stale.push(name);
      });
    }
  };
  /** The text's current name; undefined once the server would hold `max` statements. */
  const nameOf = (text: string): string | undefined => {
    const known = names.get(text);
    if (known !== undefined) return known;
    if (names.size + stale.length >= max) return undefined;
    serial += 1;
    const name = `failclosed_${tag}_${serial}`;
    names.set(text, name);
    return name;
  };
  /** `name` failed: its text is parsed afresh next time, and the server lets go of it. */
  const drop = (text: string, name: string): void => {
    if (names.get(text) !== name) return;
    names.delete(text);
    stale.push(name);
    release();
  };
  const run = (text: string, values: unknown[], name: string, retried: boolean): Promise<unknown> =>
    (query({ name, text, values }) as Promise<unknown>).catch((err: unknown) => {
      const code = codeOf(err);
      if (typeof code !== 'string' || !KEEPS_STATEMENT.test(code)) drop(text, name);
      // Refused before it ran, and not inside a transaction: sent once more, parsed afresh.
      if (
        retried ||
        typeof code !== 'string' ||
        !REFUSED_BEFORE_RUNNING.has(code) ||
        client.getTransactionStatus() !== 'I'
      )
        throw err;
      const again = nameOf(text);
      return again === undefined ? query(text, values) : run(text, values, again, true);
    });
  target.query = (...args: unknown[]): unknown => {
    const [text, values, callback] = args;
    if (typeof text !== 'string' || !Array.isArray(values) || values.length === 0) return query(...args);
    if (stale.length > 0) release();
    const name = nameOf(text);
    if (name === undefined) return query(...args);
    const answered = run(text, values, name, false);
    if (typeof callback !== 'function') return answered;
    // The callback form (`pg-pool`'s `pool.query`).
    const done = callback as (err: unknown, res?: unknown) => void;
    answered.then(
      (res) => done(null, res),
      (err: unknown) => done(err),
    );
    return undefined;
  };
}
