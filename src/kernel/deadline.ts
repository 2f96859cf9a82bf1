/**
 * Bounded calls: every dependency on the enforcement path (ledger, nonce store, policy engine,
 * governance state, another role, a tool adapter) is called through {@link withDeadline}, so a
 * hang, a throw or a rejection becomes a deny instead of a stuck or crashed request (FC-INV-4,
 * OE-INV-003, SPEC §7 scenario 5). One definition for every role.
 */

/** The settled outcome of a bounded call: never a rejection. */
export type Settled<T> =
  | { readonly status: 'ok'; readonly value: T }
  | { readonly status: 'error'; readonly error: unknown }
  | { readonly status: 'timeout' };

/**
 * Runs `fn` with a deadline of `ms` milliseconds. Synchronous throws, rejections and the
 * deadline all resolve to a non-`ok` {@link Settled}; the returned promise never rejects. The
 * `AbortSignal` handed to `fn` is aborted when the deadline passes, so a cooperative callee can
 * stop its work. A non-positive or non-finite `ms` is a programming error: `TypeError`.
 */
export async function withDeadline<T>(
  fn: (signal: AbortSignal) => T | Promise<T>,
  ms: number,
): Promise<Settled<T>> {
  if (!Number.isFinite(ms) || ms <= 0)
    throw new TypeError('deadline must be a positive number of milliseconds');
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<Settled<T>>((resolve) => {
    timer = setTimeout(() => {
      controller.abort();
      resolve({ status: 'timeout' });
    }, ms);
  });
  const work = (async (): Promise<Settled<T>> => {
    try {
      return { status: 'ok', value: await fn(controller.signal) };
    } catch (error) {
      return { status: 'error', error };
    }
  })();
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * True when `value` is a ledger confirmation `{ index, entry_hash }` (safe non-negative integer,
 * lower-hex SHA-256): what every caller must see before it treats a write as durable.
 */
export function isLedgerRef(
  value: unknown,
): value is { readonly index: number; readonly entry_hash: string } {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as { index?: unknown; entry_hash?: unknown };
  return (
    typeof v.index === 'number' &&
    Number.isSafeInteger(v.index) &&
    v.index >= 0 &&
    typeof v.entry_hash === 'string' &&
    /^[0-9a-f]{64}$/.test(v.entry_hash)
  );
}
