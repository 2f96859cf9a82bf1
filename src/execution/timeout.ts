/**
 * Bounded dependency calls. Every dependency on the enforcement path (ledger, nonce store,
 * adapter) is called through {@link callWithTimeout}, so a hang becomes a deny instead of a
 * stuck request (FC-INV-4, OE-INV-003).
 */

/** The settled outcome of a bounded call: never a rejection. */
export type Bounded<T> =
  | { readonly status: 'ok'; readonly value: T }
  | { readonly status: 'error'; readonly error: unknown }
  | { readonly status: 'timeout' };

/**
 * Runs `fn` with a deadline of `ms` milliseconds. Synchronous throws, rejections and the
 * deadline all resolve to a non-`ok` {@link Bounded}; the promise itself never rejects. The
 * `AbortSignal` handed to `fn` is aborted when the deadline passes, so a cooperative callee can
 * stop its work. A non-positive or non-finite `ms` is a programming error: `TypeError`.
 */
export async function callWithTimeout<T>(
  fn: (signal: AbortSignal) => T | Promise<T>,
  ms: number,
): Promise<Bounded<T>> {
  if (!Number.isFinite(ms) || ms <= 0)
    throw new TypeError('timeout must be a positive number of milliseconds');
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<Bounded<T>>((resolve) => {
    timer = setTimeout(() => {
      controller.abort();
      resolve({ status: 'timeout' });
    }, ms);
  });
  const work = (async (): Promise<Bounded<T>> => {
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
