/**
 * Named prepared statements on every connection of the PostgreSQL backend (SPEC §8 "durable
 * writes", docs/storage.md "Prepared statements").
 *
 * `pg` sends a statement with parameters as an unnamed one: the server parses and plans its text
 * again at every call. The stores' statements are few and fixed, and some are large (the ledger's
 * append is one statement of several common table expressions), so that work was most of the
 * server's: measured here (`npm run bench:pg-rounds`), PostgreSQL spent about 5.5 ms of CPU per
 * governed call, 2.9–3.2 ms once each connection prepared its statements once, and one gate at
 * eight concurrent callers served 113–114 calls/s against 135–150.
 *
 * {@link prepareStatements} makes a connection send every statement that has parameters under a
 * name derived from its text, so the server parses it once per connection. Without parameters a
 * statement runs as before (transaction control, DDL, migrations). A connection prepares at most
 * {@link MAX_PREPARED} texts; past that, further texts run unnamed, so a text built at run time
 * could never grow a connection's statements without bound.
 *
 * **A prepared statement the server no longer has, or can no longer run, is prepared again.**
 * A schema change under a prepared statement makes the server refuse it ("cached plan must not
 * change result type", SQLSTATE 0A000); a connection reset behind a pooler loses its statements
 * (26000). That call rejects, and its caller denies as for any store error (fail closed); the
 * connection's names then take a new generation, so the next call prepares the text afresh. A
 * pooled connection whose statement failed is also destroyed by the pool (`pg-pool` ends a
 * client released with an error). Behind PgBouncer, session pooling is needed anyway (the
 * writer's advisory locks live in sessions); PgBouncer's transaction pooling would lose the names
 * at each transaction and every call would deny.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';

/** Distinct statement texts one connection prepares at most; further ones run unnamed. */
export const MAX_PREPARED = 256;

/**
 * SQLSTATEs after which a connection's prepared statement cannot serve again: the plan's result
 * type changed under it (`feature_not_supported`, "cached plan must not change result type"), or
 * the server does not have it (`invalid_sql_statement_name`).
 */
const STALE = new Set(['0A000', '26000']);

type Query = (...args: unknown[]) => unknown;

/** Marks a client whose `query` {@link prepareStatements} already wraps. */
const PREPARED = Symbol('failclosed.prepared');

const stale = (err: unknown): boolean => {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && STALE.has(code);
};

/**
 * Makes `client` send each statement with parameters as a named prepared statement (module doc).
 * Idempotent. `max` bounds the texts it prepares (default {@link MAX_PREPARED}).
 */
export function prepareStatements(client: pg.ClientBase, max = MAX_PREPARED): void {
  const target = client as unknown as { query: Query; [PREPARED]?: true };
  if (target[PREPARED] === true) return;
  target[PREPARED] = true;
  const query: Query = target.query.bind(client);
  const names = new Map<string, string>();
  let generation = 0;
  /** Forgets every name: the next call of each text prepares it again, under a new one. */
  const renew = (): void => {
    names.clear();
    generation += 1;
  };
  target.query = (...args: unknown[]): unknown => {
    const [text, values] = args;
    if (typeof text !== 'string' || !Array.isArray(values) || values.length === 0) return query(...args);
    let name = names.get(text);
    if (name === undefined) {
      if (names.size >= max) return query(...args);
      name = `failclosed_${generation}_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
      names.set(text, name);
    }
    const config = { name, text, values };
    const callback = args[2];
    if (typeof callback === 'function')
      return query(config, (err: unknown, res: unknown) => {
        if (stale(err)) renew();
        (callback as (e: unknown, r: unknown) => void)(err, res);
      });
    const answered = query(config) as Promise<unknown>;
    // Observed here, rejected to the caller as before.
    answered.catch((err: unknown) => {
      if (stale(err)) renew();
    });
    return answered;
  };
}
