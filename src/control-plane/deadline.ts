/**
 * Bounded dependency calls for the Control Plane: every call to the ledger, the governance state
 * and the policy engine goes through {@link withDeadline}, so a hang becomes a deny instead of a
 * stuck decision (FC-INV-4, OE-INV-003, SPEC §7 scenario 5).
 */

/** The settled outcome of a bounded call: never a rejection. */
export type Settled<T> =
  | { readonly status: 'ok'; readonly value: T }
  | { readonly status: 'error'; readonly error: unknown }
  | { readonly status: 'timeout' };

/**
 * Runs `fn` with a deadline of `ms` milliseconds. Synchronous throws, rejections and the
 * deadline all resolve to a non-`ok` {@link Settled}; the returned promise never rejects.
 * A non-positive or non-finite `ms` is a caller error (`TypeError`).
 */
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
