/**
 * Bounded calls for the Gate: every call to another role goes through {@link withDeadline}, so a
 * hang, a throw or a rejection becomes a deny instead of a stuck or crashed request (FC-INV-4,
 * SPEC §7 scenario 5).
 */

/** The settled outcome of a bounded call: never a rejection. */
export type Settled<T> =
  | { readonly status: 'ok'; readonly value: T }
  | { readonly status: 'error'; readonly error: unknown }
  | { readonly status: 'timeout' };

/** Runs `fn` with a deadline of `ms` milliseconds; the returned promise never rejects. */
export async function withDeadline<T>(fn: () => T | Promise<T>, ms: number): Promise<Settled<T>> {
  if (!Number.isFinite(ms) || ms <= 0) throw new TypeError('deadline must be a positive number of milliseconds');
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<Settled<T>>((resolve) => {
    timer = setTimeout(() => resolve({ status: 'timeout' }), ms);
  });
  const work = (async (): Promise<Settled<T>> => {
    try {
      return { status: 'ok', value: await fn() };
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
