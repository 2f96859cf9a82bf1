/**
 * The Execution Layer's reading of the ledger before it consumes a nonce (L7 Boundary B, SPEC §3
 * "ledger decision matches → issuance recorded → nonce consumed"): every field of the decision
 * and of the issuance record is compared, and a ledger answer of any other shape is no answer
 * (FC-INV-4). Pure functions, fed with records built here.
 */
import { describe, expect, it } from 'vitest';
import {
  checkEnvelopeLedger,
  parseEnvelopeContext,
  standingDecisionOf,
} from '../../src/execution/ledger-checks.js';
import type { EnvelopeLedgerContext, LedgerRecord } from '../../src/execution/index.js';
import { sha256Hex } from '../../src/kernel/index.js';
import type { EnvelopeClaims } from '../../src/kernel/index.js';
import { constraints } from './support.js';

const DIGEST = sha256Hex('the jws');
const DECISION_INDEX = 10;
const DECISION_HASH = sha256Hex('decision entry');

const claims: EnvelopeClaims = {
  iss: 'control-plane',
  aud: 'executor-1',
  sub: 'agent-7',
  tenant: 'acme',
  tool: 'echo',
  params_sha256: sha256Hex('params'),
  jti: 'jti-1',
  iat: 1000,
  exp: 1060,
  decision_id: 'dec-1',
  request_id: 'req-1',
  trace_id: 'trace-1',
  policy_bundle: sha256Hex('bundle'),
  ledger: { index: DECISION_INDEX, entry_hash: DECISION_HASH },
  approvals: [],
  constraints: constraints(),
};

const decision = (over: Partial<LedgerRecord> = {}, payload: Record<string, unknown> = {}): LedgerRecord => ({
  index: DECISION_INDEX,
  entry_hash: DECISION_HASH,
  type: 'decision',
  tenant: 'acme',
  trace_id: 'trace-1',
  request_id: 'req-1',
  ...over,
  payload: {
    decision_id: 'dec-1',
    outcome: 'allow',
    tool: 'echo',
    client: 'agent-7',
    policy_bundle: claims.policy_bundle,
    params_sha256: claims.params_sha256,
    ...payload,
  },
});

const issued = (over: Partial<LedgerRecord> = {}, payload: Record<string, unknown> = {}): LedgerRecord => ({
  index: 12,
  entry_hash: sha256Hex('issued entry'),
  type: 'envelope.issued',
  tenant: 'acme',
  trace_id: 'trace-1',
  request_id: 'req-1',
  ...over,
  payload: {
    decision_id: 'dec-1',
    jti: 'jti-1',
    envelope_sha256: DIGEST,
    ...payload,
  },
});

const finalized = (
  over: Partial<LedgerRecord> = {},
  payload: Record<string, unknown> = {},
): LedgerRecord => ({
  index: 11,
  entry_hash: sha256Hex('finalized entry'),
  type: 'approval.finalized',
  tenant: 'acme',
  trace_id: '',
  request_id: '',
  ...over,
  payload: { decision_id: 'dec-1', verdict: 'approve', ...payload },
});

const ctx = (over: Partial<EnvelopeLedgerContext> = {}): EnvelopeLedgerContext => ({
  decision: decision(),
  issued: [issued()],
  finalized: [],
  ...over,
});

const code = (c: EnvelopeLedgerContext, digest = DIGEST) => checkEnvelopeLedger(c, claims, digest)?.code;

describe('L7 Boundary B: the decision the envelope points at must be this call’s allow', () => {
  it('the allow decision for exactly this call, issued after it → no objection', () => {
    expect(code(ctx())).toBeUndefined();
  });

  it('no entry, another index or another entry hash → ERR_ENVELOPE_LEDGER_UNCONFIRMED', () => {
    expect(code(ctx({ decision: undefined }))).toBe('ERR_ENVELOPE_LEDGER_UNCONFIRMED');
    expect(code(ctx({ decision: decision({ index: DECISION_INDEX + 1 }) }))).toBe(
      'ERR_ENVELOPE_LEDGER_UNCONFIRMED',
    );
    expect(code(ctx({ decision: decision({ entry_hash: sha256Hex('other') }) }))).toBe(
      'ERR_ENVELOPE_LEDGER_UNCONFIRMED',
    );
  });

  const mismatches: [string, Partial<LedgerRecord>, Record<string, unknown>][] = [
    ['not a decision entry', { type: 'gateway.accepted' }, {}],
    ['another decision id', {}, { decision_id: 'dec-2' }],
    ['another request', { request_id: 'req-2' }, {}],
    ['another tenant', { tenant: 'globex' }, {}],
    ['another tool', {}, { tool: 'transfer_funds' }],
    ['another client', {}, { client: 'agent-8' }],
    ['another policy bundle', {}, { policy_bundle: sha256Hex('other bundle') }],
    ['other parameters', {}, { params_sha256: sha256Hex('other params') }],
    ['a deny', {}, { outcome: 'deny' }],
    ['an escalation never approved', {}, { outcome: 'escalate' }],
  ];
  for (const [name, over, payload] of mismatches) {
    it(`${name} → ERR_ENVELOPE_DECISION_MISMATCH`, () => {
      expect(code(ctx({ decision: decision(over, payload) }))).toBe('ERR_ENVELOPE_DECISION_MISMATCH');
    });
  }
});

describe('L7 Boundary B: an escalation counts only once finalised as approved before issuance', () => {
  const escalated = decision({}, { outcome: 'escalate' });
  const withFinal = (...f: LedgerRecord[]) => code(ctx({ decision: escalated, finalized: f }));

  it('approved or break-glass, for this decision and tenant, before the issuance → no objection', () => {
    expect(withFinal(finalized())).toBeUndefined();
    expect(withFinal(finalized({}, { verdict: 'break_glass' }))).toBeUndefined();
    // Among other records: one matching approval is enough.
    expect(withFinal(finalized({}, { verdict: 'reject' }), finalized())).toBeUndefined();
  });

  const refused: [string, LedgerRecord][] = [
    ['rejected', finalized({}, { verdict: 'reject' })],
    ['finalised for another decision', finalized({}, { decision_id: 'dec-2' })],
    ['finalised in another tenant', finalized({ tenant: 'globex' })],
    ['an entry of another type', finalized({ type: 'approval.requested' })],
    ['finalised at the issuance index', finalized({ index: 12 })],
    ['finalised after the issuance', finalized({ index: 13 })],
  ];
  for (const [name, f] of refused) {
    it(`${name} → ERR_ENVELOPE_DECISION_MISMATCH`, () => {
      expect(withFinal(f)).toBe('ERR_ENVELOPE_DECISION_MISMATCH');
    });
  }

  it('an approval does not turn a deny or an unknown outcome into an allow → ERR_ENVELOPE_DECISION_MISMATCH', () => {
    for (const outcome of ['deny', 'allowed']) {
      expect(code(ctx({ decision: decision({}, { outcome }), finalized: [finalized()] }))).toBe(
        'ERR_ENVELOPE_DECISION_MISMATCH',
      );
    }
  });

  it('an approval with no issuance at all is still no issuance → ERR_ENVELOPE_NOT_ISSUED', () => {
    expect(code(ctx({ decision: escalated, finalized: [finalized()], issued: [] }))).toBe(
      'ERR_ENVELOPE_NOT_ISSUED',
    );
  });
});

describe('L7 Boundary B: the issuance of exactly this JWS was recorded after the decision', () => {
  const notIssued: [string, LedgerRecord[], string?][] = [
    ['no issuance record', []],
    ['an entry of another type', [issued({ type: 'envelope.voided' })]],
    ['issued in another tenant', [issued({ tenant: 'globex' })]],
    ['issued for another jti', [issued({}, { jti: 'jti-2' })]],
    ['issued for another decision', [issued({}, { decision_id: 'dec-2' })]],
    ['issued with another digest', [issued({}, { envelope_sha256: sha256Hex('other jws') })]],
    ['issued with no digest', [issued({}, { envelope_sha256: 7 })]],
    ['issued with a digest that is a list', [issued({}, { envelope_sha256: Array<string>(64).fill('a') })]],
    ['issued at the decision index', [issued({ index: DECISION_INDEX })]],
    ['issued before the decision', [issued({ index: DECISION_INDEX - 1 })]],
  ];
  for (const [name, records] of notIssued) {
    it(`${name} → ERR_ENVELOPE_NOT_ISSUED`, () => {
      expect(code(ctx({ issued: records }))).toBe('ERR_ENVELOPE_NOT_ISSUED');
    });
  }

  it('the matching record among others is found', () => {
    expect(code(ctx({ issued: [issued({}, { jti: 'jti-2' }), issued({ index: 14 })] }))).toBeUndefined();
  });
});

describe('FC-INV-4: a ledger answer of any other shape is no answer', () => {
  const good = { decision: decision(), issued: [issued()], finalized: [finalized()] };

  it('the expected shape is read back as it is', () => {
    expect(parseEnvelopeContext(good)).toEqual(good);
    expect(parseEnvelopeContext({ ...good, decision: undefined })).toEqual({ ...good, decision: undefined });
  });

  const broken: [string, unknown][] = [
    ['undefined', undefined],
    ['null', null],
    ['a string', 'context'],
    ['no issued list', { ...good, issued: undefined }],
    ['no finalized list', { ...good, finalized: undefined }],
    ['an issued list that is an object', { ...good, issued: { 0: issued() } }],
    ['a decision that is null', { ...good, decision: null }],
    ['a decision that is a string', { ...good, decision: 'decision' }],
    ['a record with a fractional index', { ...good, issued: [{ ...issued(), index: 1.5 }] }],
    ['a record with a string index', { ...good, decision: { ...decision(), index: '10' } }],
    ['a record with no entry hash', { ...good, decision: { ...decision(), entry_hash: 1 } }],
    ['a record with no type', { ...good, finalized: [{ ...finalized(), type: null }] }],
    ['a record with no tenant', { ...good, decision: { ...decision(), tenant: undefined } }],
    ['a record with no trace id', { ...good, decision: { ...decision(), trace_id: 5 } }],
    ['a record with no request id', { ...good, decision: { ...decision(), request_id: false } }],
    ['a record with no payload', { ...good, decision: { ...decision(), payload: null } }],
    ['a record with a string payload', { ...good, decision: { ...decision(), payload: 'p' } }],
    ['a record that is null', { ...good, issued: [issued(), null] }],
    ['a record that is a function', { ...good, decision: Object.assign(() => undefined, decision()) }],
  ];
  for (const [name, value] of broken) {
    it(`${name} → undefined (the executor denies ERR_LEDGER_UNAVAILABLE)`, () => {
      expect(parseEnvelopeContext(value)).toBeUndefined();
    });
  }
});

describe('FC-INV-6 scheduled tasks: a run’s escalated decision stands only on its schedule’s approved creation', () => {
  const run = decision({}, { outcome: 'escalate', schedule_decision_id: 'dec-create' });
  const creation = (over: Partial<LedgerRecord> = {}, payload: Record<string, unknown> = {}) =>
    finalized({ index: 3, ...over }, { decision_id: 'dec-create', ...payload });
  const check = (standing: LedgerRecord[], d = run) =>
    checkEnvelopeLedger(ctx({ decision: d }), claims, DIGEST, standing)?.code;

  it('names the creation decision only for an escalated decision that carries one', () => {
    expect(standingDecisionOf(ctx({ decision: run }))).toBe('dec-create');
    expect(standingDecisionOf(ctx())).toBeUndefined();
    expect(
      standingDecisionOf(ctx({ decision: decision({}, { schedule_decision_id: 'dec-create' }) })),
    ).toBeUndefined();
    expect(
      standingDecisionOf(ctx({ decision: decision({}, { outcome: 'escalate', schedule_decision_id: 7 }) })),
    ).toBeUndefined();
  });

  it('the creation approved before the issuance → no objection', () => {
    expect(check([creation()])).toBeUndefined();
    expect(check([creation({}, { verdict: 'break_glass' })])).toBeUndefined();
  });

  it('no approval of the creation, a rejected one, one after the issuance, another tenant’s, another decision’s → ERR_ENVELOPE_DECISION_MISMATCH', () => {
    expect(check([])).toBe('ERR_ENVELOPE_DECISION_MISMATCH');
    expect(check([creation({}, { verdict: 'reject' })])).toBe('ERR_ENVELOPE_DECISION_MISMATCH');
    expect(check([creation({ index: 13 })])).toBe('ERR_ENVELOPE_DECISION_MISMATCH');
    expect(check([creation({ tenant: 'globex' })])).toBe('ERR_ENVELOPE_DECISION_MISMATCH');
    expect(check([creation({}, { decision_id: 'dec-other' })])).toBe('ERR_ENVELOPE_DECISION_MISMATCH');
  });

  it('a creation’s approval never stands in for an escalated decision that names no schedule', () => {
    expect(check([creation()], decision({}, { outcome: 'escalate' }))).toBe('ERR_ENVELOPE_DECISION_MISMATCH');
  });
});
