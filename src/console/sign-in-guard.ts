/**
 * Every console sign-in attempt, of approvers and operators, through one guard (docs/console.md
 * "Sign-in attempts"; OE-INV-025, L7 Identity & Signing): failed attempts are counted per name
 * (the name an approver types) and per client address in a fixed window, and past the limit the
 * next attempt is refused `ERR_SIGN_IN_RATE_LIMITED` before it is tried; every attempt is ledgered
 * `console.sign_in` (a successful one before the session is handed out: not recorded, the session
 * is ended and the sign-in refused `ERR_LEDGER_UNAVAILABLE`). The counters live in the console
 * store, shared by every gate on the same storage: replicas do not multiply the limit. A store that
 * cannot count rejects, and the attempt is refused without being tried.
 */
import { isIP } from 'node:net';
import { deny, isDeny } from '../kernel/index.js';
import type { Clock, Deny, JsonObject } from '../kernel/index.js';
import type { ApiAnswer } from './api.js';
import type { ConsoleStore } from './store.js';

/** The limit on failed sign-ins: at most `failures` per name and per address in `window_ms`. */
export interface SignInLimits {
  readonly failures: number;
  readonly window_ms: number;
}

/** Five failures per name and per address in 15 minutes. */
export const DEFAULT_SIGN_IN_LIMITS: SignInLimits = Object.freeze({ failures: 5, window_ms: 15 * 60_000 });

/** One attempt as ledgered (`console.sign_in`). */
export interface SignInAttempt {
  /** `approver` or `operator`. */
  readonly kind: 'approver' | 'operator';
  /** `code`, `key`, `oidc` or `token`. */
  readonly method: string;
  readonly outcome: 'ok' | 'refused' | 'rate_limited';
  /** The denial code of a refusal. */
  readonly code?: string;
  /** The person: the name typed, or the one signed in; absent when unknown. */
  readonly name?: string;
  /** The client address the attempt came from. */
  readonly address?: string;
}

/** What the guard needs. */
export interface SignInGuardDeps {
  /** Ledgers an attempt; true once confirmed. */
  readonly record: (attempt: SignInAttempt) => Promise<boolean>;
  /** Ends the session a sign-in just opened (its cookie value). */
  readonly endSession: (cookie: string) => Promise<void>;
  /** The failure counters (the console store). */
  readonly counters: Pick<ConsoleStore, 'admitSignIn' | 'forgiveSignIn'>;
  readonly now: Clock;
  readonly limits?: SignInLimits;
}

/** The guard: runs one sign-in attempt under the limits and ledgers it. */
export type SignInGuard = (
  attempt: {
    readonly kind: 'approver' | 'operator';
    readonly method: string;
    readonly name?: string;
    readonly address?: string;
  },
  run: () => Promise<ApiAnswer | Deny>,
) => Promise<ApiAnswer | Deny>;

const NAME = /^[\x21-\x7e]{1,128}$/;

/**
 * The counter key of a client address: an IPv6 address by its /64 (one host usually holds a whole
 * /64, so counting single addresses would not limit it), an IPv4-mapped one as its IPv4 address,
 * anything else as given.
 */
export function addressKey(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped?.[1] !== undefined) return mapped[1];
  if (isIP(address) !== 6) return address;
  const [head = '', tail] = address.split('%')[0]!.toLowerCase().split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups =
    tail === undefined
      ? left
      : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}

/** Creates the guard over the store's counters. */
export function createSignInGuard(deps: SignInGuardDeps): SignInGuard {
  const limits = deps.limits ?? DEFAULT_SIGN_IN_LIMITS;
  const keysOf = (name: string | undefined, address: string | undefined): string[] => [
    ...(name === undefined ? [] : [`name:${name}`]),
    ...(address === undefined ? [] : [`addr:${addressKey(address)}`]),
  ];

  return async (a, run) => {
    const name = a.name !== undefined && NAME.test(a.name) ? a.name : undefined;
    const who = {
      kind: a.kind,
      method: a.method,
      ...(name === undefined ? {} : { name }),
      ...(a.address === undefined ? {} : { address: a.address }),
    };
    const keys = keysOf(name, a.address);
    const at = deps.now();
    // Counted as a failure before it is tried, taken back if it succeeds: attempts sent at once,
    // through this gate or another on the same storage, cannot all pass the check.
    const admission = await deps.counters.admitSignIn(keys, at, limits.failures, limits.window_ms);
    if (!admission.admitted) {
      // Ledgered once per window and counter: a flood of refused attempts does not flood the ledger.
      if (admission.tell)
        await deps
          .record({ ...who, outcome: 'rate_limited', code: 'ERR_SIGN_IN_RATE_LIMITED' })
          .catch(() => false);
      return deny('ERR_SIGN_IN_RATE_LIMITED', 'too many failed sign-ins: wait and try again');
    }
    // Thrown: stays counted as a failure.
    const r = await run();
    if (isDeny(r) || r.status !== 200) {
      const code = isDeny(r) ? r.code : `HTTP_${r.status}`;
      // The refusal stands whether or not the ledger took it.
      await deps.record({ ...who, outcome: 'refused', code }).catch(() => false);
      return r;
    }
    // Not taken back when the store cannot: the attempt stays counted, the stricter side.
    await deps.counters.forgiveSignIn(keys, at, limits.window_ms).catch(() => undefined);
    const body = r.body as JsonObject;
    const signedIn = typeof body['name'] === 'string' ? body['name'] : name;
    const recorded = await deps
      .record({ ...who, outcome: 'ok', ...(signedIn === undefined ? {} : { name: signedIn }) })
      .catch(() => false);
    if (!recorded) {
      if (r.cookie !== undefined && r.cookie !== '') await deps.endSession(r.cookie);
      return deny('ERR_LEDGER_UNAVAILABLE', 'the sign-in was not recorded');
    }
    return r;
  };
}
