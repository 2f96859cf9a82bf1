/**
 * Row parsing for the PostgreSQL backend: a database row is a trust boundary (STYLE "Untrusted
 * input"). `bigint` columns arrive as strings from `pg`; they are turned into safe integers or
 * rejected, never coerced.
 */

/** A safe integer from a `bigint`/`integer` column value; `TypeError` otherwise. */
export function rowInt(v: unknown, column: string): number {
  const n = typeof v === 'string' && /^-?(0|[1-9][0-9]{0,15})$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isSafeInteger(n))
    throw new TypeError(`column ${column} is not a safe integer`);
  return n;
}

/** A string column value; `TypeError` otherwise. */
export function rowText(v: unknown, column: string): string {
  if (typeof v !== 'string') throw new TypeError(`column ${column} is not text`);
  return v;
}

/** A `bytea` column value; `TypeError` otherwise. */
export function rowBytes(v: unknown, column: string): Buffer {
  if (!Buffer.isBuffer(v)) throw new TypeError(`column ${column} is not bytea`);
  return v;
}

/** A `boolean` column value; `TypeError` otherwise. */
export function rowBool(v: unknown, column: string): boolean {
  if (typeof v !== 'boolean') throw new TypeError(`column ${column} is not boolean`);
  return v;
}

/**
 * The row of a prune batch statement (`examined`, `last`, `deleted`) as the request-memory pruner
 * takes it; `last` is `cursor` when nothing was examined. Throws on a missing or malformed row.
 */
export function pruneBatchOf(
  row: Record<string, unknown> | undefined,
  cursor: number,
): { readonly examined: number; readonly last: number; readonly deleted: number } {
  if (row === undefined) throw new TypeError('prune answered no row');
  const examined = rowInt(row['examined'], 'examined');
  return {
    examined,
    last: examined === 0 ? cursor : rowInt(row['last'], 'last'),
    deleted: rowInt(row['deleted'], 'deleted'),
  };
}
