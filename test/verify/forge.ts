/**
 * A consistent forger over the synthetic ledger of realistic.ts, for the per-check verifier
 * tests: tamper with a parsed complete bundle, then let relink.ts rebuild the chain, the moved
 * decisions' ledger claims (re-signed with the synthetic issuer key), the checkpoint and its
 * pinned key, so that whatever still fails is exactly the linkage the tamper broke (SPEC §5).
 */
import { expect } from 'vitest';
import {
  claimsOfIssued,
  envelopeSha256,
  issuedPayload,
  type EnvelopeClaims,
} from '../../src/kernel/index.js';
import { signEnvelope, type SigningKey } from '../../src/kernel/signing/index.js';
import {
  verifyBundle,
  type FindingCode,
  type VerifyOptions,
  type VerifyReport,
} from '../../src/verify/index.js';
import { mutable, text, type MutableBundle } from './helpers.js';
import { ISSUER_KEY, traceIdOf } from './realistic.js';
import { relink } from './relink.js';

/** Applies `tamper` to a copy of `base`, rebuilds it consistently and verifies it with the forger's ledger key pinned. */
export function forge(
  base: string,
  tamper: (b: MutableBundle) => void,
  opts: VerifyOptions = {},
): { report: VerifyReport; bundle: MutableBundle } {
  const b = mutable(base);
  tamper(b);
  const { vkey } = relink(b, ISSUER_KEY);
  return { report: verifyBundle(text(b), { trustedKey: vkey, ...opts }), bundle: b };
}

/** The entries of a parsed bundle. */
export const entriesOf = (b: MutableBundle): MutableBundle[] => b['entries'] as MutableBundle[];

/** Position of the entry of `type` in synthetic trace `n` (realistic.ts). */
export function at(b: MutableBundle, type: string, n = 0): number {
  const trace = traceIdOf(n);
  const i = entriesOf(b).findIndex((e) => e['trace_id'] === trace && e['type'] === type);
  if (i < 0) throw new TypeError(`no ${type} in trace ${n}`);
  return i;
}

/** The entry of `type` in trace `n`. */
export const entryAt = (b: MutableBundle, type: string, n = 0): MutableBundle =>
  entriesOf(b)[at(b, type, n)]!;

/** Removes the entry of `type` in trace `n`. */
export function drop(b: MutableBundle, type: string, n = 0): void {
  entriesOf(b).splice(at(b, type, n), 1);
}

/** Inserts `entry` (index, prev_hash and hash are rebuilt by the forger) at `position`. */
export function insert(b: MutableBundle, position: number, entry: MutableBundle): void {
  const before = entriesOf(b)[Math.max(0, position - 1)]!;
  entriesOf(b).splice(position, 0, {
    index: 0,
    prev_hash: '0'.repeat(64),
    at: before['at'],
    trace_id: '',
    request_id: '',
    tenant: '*',
    actor: { id: 'operator', role: 'operator' },
    entry_hash: '0'.repeat(64),
    ...entry,
  });
}

/**
 * Re-issues the envelope of trace `n` with changed claims, signed by `key`: the `envelope.issued`
 * record states the new claims (its entry-level tenant, trace and request follow them) and digest,
 * and the receipt carries the new JWS, so issuance and consumption agree.
 */
export function reissue(
  b: MutableBundle,
  n: number,
  change: (c: MutableBundle) => void,
  key: SigningKey = ISSUER_KEY,
): void {
  const issued = entryAt(b, 'envelope.issued', n);
  const claims = structuredClone(claimsOfIssued(issued as never)) as unknown as MutableBundle;
  change(claims);
  issued['tenant'] = claims['tenant'];
  issued['trace_id'] = claims['trace_id'];
  issued['request_id'] = claims['request_id'];
  const c = claims as unknown as EnvelopeClaims;
  const jws = signEnvelope(c, key);
  const digest = envelopeSha256(jws);
  issued['payload'] = issuedPayload(c, key.kid, digest);
  for (const e of entriesOf(b))
    if (e['type'] === 'execution.receipt' && e['payload']['jti'] === c.jti) {
      e['payload']['envelope'] = jws;
      e['payload']['envelope_sha256'] = digest;
    }
}

/** Findings of check `id`. */
export const findingsOf = (r: VerifyReport, id: string) => r.checks.find((c) => c.id === id)?.findings ?? [];
/** Undecided links of check `id`. */
export const undecidedOf = (r: VerifyReport, id: string) =>
  r.checks.find((c) => c.id === id)?.undecided ?? [];
/** Codes found by check `id`. */
export const codesOf = (r: VerifyReport, id: string): FindingCode[] => findingsOf(r, id).map((f) => f.code);
/** Ids of the failing checks. */
export const failing = (r: VerifyReport): string[] =>
  r.checks.filter((c) => c.status === 'fail').map((c) => c.id);

/**
 * The report fails on exactly the checks `only` (default: `check` alone), and `check`'s findings
 * are exactly `code` at each of `indices`.
 */
export function expectFinding(
  r: VerifyReport,
  check: string,
  code: FindingCode,
  indices: readonly number[],
  only: readonly string[] = [check],
): void {
  expect(r.exitCode).toBe(1);
  expect(findingsOf(r, check).map((f) => ({ code: f.code, index: f.index }))).toEqual(
    indices.map((index) => ({ code, index })),
  );
  expect(failing(r).sort()).toEqual([...only].sort());
}
