/**
 * The console's sign-in guard (docs/console.md "Sign-in attempts"; L7 Identity & Signing): the
 * failure limit holds for attempts sent at once, a success takes back what it was counted as, and
 * an IPv6 client is counted by its /64.
 */
import { describe, expect, it } from 'vitest';
import { addressKey, createSignInGuard } from '../../src/console/sign-in-guard.js';
import type { SignInAttempt } from '../../src/console/sign-in-guard.js';
import { deny, isDeny } from '../../src/kernel/index.js';

const LIMITS = { failures: 3, window_ms: 60_000 };

function guard() {
  const records: SignInAttempt[] = [];
  const g = createSignInGuard({
    record: (a) => {
      records.push(a);
      return Promise.resolve(true);
    },
    endSession: () => Promise.resolve(),
    now: () => 1_000,
    limits: LIMITS,
  });
  return { g, records };
}

const refused = () => Promise.resolve(deny('ERR_UNAUTHENTICATED', 'wrong code'));
const codeOf = (r: Awaited<ReturnType<ReturnType<typeof guard>['g']>>): string | number =>
  isDeny(r) ? r.code : r.status;

describe('sign-in guard', () => {
  it('attempts sent at once cannot all pass the check: only the limit runs, the rest are refused', async () => {
    const { g } = guard();
    let ran = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const attempts = Array.from({ length: 10 }, () =>
      g({ kind: 'approver', method: 'code', name: 'alice', address: '192.0.2.7' }, async () => {
        ran += 1;
        await gate;
        return deny('ERR_UNAUTHENTICATED', 'wrong code');
      }),
    );
    release();
    const codes = (await Promise.all(attempts)).map(codeOf);
    expect(ran).toBe(LIMITS.failures);
    expect(codes.filter((c) => c === 'ERR_SIGN_IN_RATE_LIMITED')).toHaveLength(10 - LIMITS.failures);
  });

  it('a successful attempt is not counted as a failure', async () => {
    const { g } = guard();
    const who = { kind: 'approver' as const, method: 'code', name: 'bob', address: '192.0.2.8' };
    const ok = () => Promise.resolve({ status: 200, body: { name: 'bob' } });
    expect(codeOf(await g(who, refused))).toBe('ERR_UNAUTHENTICATED');
    expect(codeOf(await g(who, refused))).toBe('ERR_UNAUTHENTICATED');
    expect(codeOf(await g(who, ok))).toBe(200);
    // The third failure is still tried; the fourth attempt is over the limit.
    expect(codeOf(await g(who, refused))).toBe('ERR_UNAUTHENTICATED');
    expect(codeOf(await g(who, ok))).toBe('ERR_SIGN_IN_RATE_LIMITED');
  });

  it('an IPv6 client is counted by its /64: other addresses of it share the limit, another /64 does not', async () => {
    const { g, records } = guard();
    const from = (address: string) => g({ kind: 'operator', method: 'token', address }, refused);
    for (const a of ['2001:db8:1:2::a', '2001:db8:1:2:0:0:0:b', '2001:DB8:1:2::c'])
      expect(codeOf(await from(a))).toBe('ERR_UNAUTHENTICATED');
    expect(codeOf(await from('2001:db8:1:2:ffff::d'))).toBe('ERR_SIGN_IN_RATE_LIMITED');
    expect(codeOf(await from('2001:db8:1:3::1'))).toBe('ERR_UNAUTHENTICATED');
    // Recorded with the address as given.
    expect(records.map((r) => r.address)).toContain('2001:DB8:1:2::c');
  });

  it('address keys', () => {
    expect(addressKey('192.0.2.1')).toBe('192.0.2.1');
    expect(addressKey('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('2001:0db8:0000:0001:1:2:3:4')).toBe('2001:db8:0:1::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressKey('not an address')).toBe('not an address');
  });
});
