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

/** The signal handed to a callee that declares no parameter: it never reads it (see below). */
const UNUSED_SIGNAL: AbortSignal = new AbortController().signal;

/**
 * Runs `fn` with a deadline of `ms` milliseconds. Synchronous throws, rejections and the
 * deadline all resolve to a non-`ok` {@link Settled}; the returned promise never rejects. The
 * `AbortSignal` handed to `fn` is aborted when the deadline passes, so a cooperative callee can
 * stop its work. A non-positive or non-finite `ms` is a programming error: `TypeError`.
 *
 * Only a callee that declares the signal parameter (`fn.length > 0`, e.g. `(signal) => ...`) gets
 * a signal of its own: an `AbortController` and its signal cost more than the rest of a bounded
 * call, and most callees (`() => store.write(...)`) never look at it; the others get a signal
 * that never aborts. The deadline itself is the same for both: on expiry the call settles as
 * `timeout` whatever the callee does.
 */
export function withDeadline<T>(
  fn: (signal: AbortSignal) => T | Promise<T>,
  ms: number,
): Promise<Settled<T>> {
  if (!Number.isFinite(ms) || ms <= 0)
    throw new TypeError('deadline must be a positive number of milliseconds');
  const controller = fn.length > 0 ? new AbortController() : undefined;
  return new Promise<Settled<T>>((resolve) => {
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      controller?.abort();
      resolve({ status: 'timeout' });
    }, ms);
    const settle = (s: Settled<T>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(s);
    };
    let result: T | Promise<T>;
    try {
      result = fn(controller?.signal ?? UNUSED_SIGNAL);
    } catch (error) {
      settle({ status: 'error', error });
      return;
    }
    Promise.resolve(result).then(
      (value) => settle({ status: 'ok', value }),
      (error: unknown) => settle({ status: 'error', error }),
    );
  });
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
