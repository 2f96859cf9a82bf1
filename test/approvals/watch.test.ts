/**
 * Approvals watched (L7 Deployment Hardening "Rate limits and anomaly detection for approvals",
 * OE-INV-020): the real approval service and Control Plane over a real SQLite ledger and approval
 * store, on an injected clock. A per-approver rate limit refuses (`ERR_APPROVER_RATE_LIMITED`,
 * ledgered); an approval seconds after the request without the preview opened, a burst, a new
 * tenant or an unusual hour is ledgered `approval.flagged`; under `require_extra` a flagged
 * approval needs one more approver, and `verify` checks that offline.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { approvalSigningInput, encodeBase64url, isDeny } from '../../src/kernel/index.js';
import type { ApprovalStatement, JsonValue } from '../../src/kernel/index.js';
import { generateSigningKey, signEd25519 } from '../../src/kernel/signing/index.js';
import type { SigningKey } from '../../src/kernel/signing/index.js';
import {
  DEFAULT_WATCH_SETTINGS,
  createApprovalApi,
  createSqliteApprovalStore,
  parseApprovalConfig,
} from '../../src/control-plane/index.js';
import type { ApprovalService, WatchSettings } from '../../src/control-plane/index.js';
import { exportBundle } from '../../src/ledger/index.js';
import { verifyBundle } from '../../src/verify/index.js';
import { entriesOf, OPERATOR, request, type Rig, rigWithApprovals } from './cp-support.js';

const opened: Rig[] = [];
afterEach(async () => {
  for (const r of opened.splice(0)) await r.close();
});

const APPROVERS = ['ann', 'ben', 'cy'] as const;

interface Setup {
  readonly r: Rig;
  readonly approvals: ApprovalService;
  /** A signed approval (or rejection) of `approver`, submitted at the clock's time. */
  readonly sign: (decisionId: string, approver: string, verdict?: 'approve' | 'reject') => Promise<unknown>;
  /** Opens an escalated `wire` decision (2 approvals) numbered `i` in `tenant`; its id. */
  readonly escalate: (i: number, tenant?: string) => Promise<string>;
}

async function setup(watch: Partial<WatchSettings>): Promise<Setup> {
  const { r, approvals } = await rigWithApprovals(createSqliteApprovalStore(':memory:'), {
    settings: { watch: { ...DEFAULT_WATCH_SETTINGS, ...watch } },
  });
  opened.push(r);
  await approvals.setOwner('agent-1', 'olga');
  const keys = new Map<string, SigningKey>();
  for (const name of APPROVERS) {
    const key = generateSigningKey();
    keys.set(name, key);
    const reg = await approvals.registerApprover(
      { name, roles: ['ops'], tenants: '*', public_jwk: { ...key.publicJwk } },
      OPERATOR,
    );
    expect(isDeny(reg)).toBe(false);
  }
  return {
    r,
    approvals,
    sign: async (decisionId, approver, verdict = 'approve') => {
      const p = await approvals.get(decisionId);
      const s: ApprovalStatement = {
        decision_id: decisionId,
        intent_sha256: p?.intent_sha256 ?? '',
        preview_sha256: p?.preview_sha256 ?? null,
        verdict,
        justification: 'fine',
        timestamp: new Date(r.clock()).toISOString(),
        approver,
      };
      return approvals.submit(decisionId, {
        statement: { ...s },
        signature: encodeBase64url(signEd25519(keys.get(approver)!, approvalSigningInput(s))),
      });
    },
    escalate: async (i, tenant = 'acme') => {
      const first = await r.cp.decide(
        request(
          'wire',
          { amount_cents: 100 + i },
          { request_id: `req-${i}`, trace_id: `trace-${i}`, tenant, timestamp: r.clock() },
        ),
      );
      expect(first).toMatchObject({ outcome: 'deny', code: 'ERR_APPROVAL_PENDING' });
      return first.decision_id!;
    },
  };
}

type Entry = Awaited<ReturnType<typeof entriesOf>>[number];
const of = (entries: readonly Entry[], type: string, id?: string): Entry[] =>
  entries.filter(
    (e) =>
      e.type === type && (id === undefined || (e.payload as { decision_id?: unknown }).decision_id === id),
  );
const flagsOf = async (r: Rig, id: string, approver: string): Promise<unknown> =>
  of(await entriesOf(r.ledger), 'approval.flagged', id).find((e) => e.payload['approver'] === approver)
    ?.payload['flags'];

/** No flags but the one under test: approvals are looked at and slow enough. */
const QUIET: Partial<WatchSettings> = {
  quickSec: 0,
  burst: { count: 1000, windowSec: 60 },
  minHistory: 1000,
};

describe('per-approver rate limit (L7 "rate limits … for approvals")', () => {
  it('over the limit an approval is refused ERR_APPROVER_RATE_LIMITED, ledgered, and counts for nothing', async () => {
    const { r, approvals, sign, escalate } = await setup({
      ...QUIET,
      rateLimit: { max: 2, windowSec: 3600 },
    });
    for (const i of [1, 2]) {
      const id = await escalate(i);
      expect(await sign(id, 'ann')).toMatchObject({ outcome: 'ok', status: 'pending' });
    }
    const third = await escalate(3);
    expect(await sign(third, 'ann')).toMatchObject({ outcome: 'deny', code: 'ERR_APPROVER_RATE_LIMITED' });
    expect(await approvals.votes(third)).toEqual([]);
    const refusal = of(await entriesOf(r.ledger), 'denial', third);
    expect(refusal).toHaveLength(1);
    expect(refusal[0]).toMatchObject({
      actor: { id: 'ann', role: 'approver' },
      payload: { code: 'ERR_APPROVER_RATE_LIMITED', stage: 'approval' },
    });
    expect(of(await entriesOf(r.ledger), 'approval.added', third)).toEqual([]);
    // Another approver has its own window; a rejection is never limited.
    expect(await sign(third, 'ben')).toMatchObject({ outcome: 'ok', status: 'pending' });
    const fourth = await escalate(4);
    expect(await sign(fourth, 'ann', 'reject')).toMatchObject({ outcome: 'ok', status: 'rejected' });
    // The next window opens the limit again.
    r.clock.advance(3600_000);
    const fifth = await escalate(5);
    expect(await sign(fifth, 'ann')).toMatchObject({ outcome: 'ok', status: 'pending' });
  });

  it('the limit is per human: a refused approval takes no slot, so the count stays exact', async () => {
    const { approvals, sign, escalate } = await setup({ ...QUIET, rateLimit: { max: 1, windowSec: 60 } });
    const a = await escalate(1);
    expect(await sign(a, 'ann')).toMatchObject({ outcome: 'ok' });
    // A duplicate vote is refused before the limit is consulted.
    expect(await sign(a, 'ann')).toMatchObject({ code: 'ERR_APPROVAL_DUPLICATE' });
    const b = await escalate(2);
    expect(await sign(b, 'ann')).toMatchObject({ code: 'ERR_APPROVER_RATE_LIMITED' });
    expect(await sign(b, 'ben')).toMatchObject({ outcome: 'ok' });
    expect((await approvals.votes(b)).map((v) => v.approver)).toEqual(['ben']);
  });

  it('a signed approval replayed while limited is ledgered once per window, then only within the refusal budget', async () => {
    const { r, sign, escalate } = await setup({ ...QUIET, rateLimit: { max: 1, windowSec: 3600 } });
    expect(await sign(await escalate(1), 'ann')).toMatchObject({ outcome: 'ok' });
    const b = await escalate(2);
    // The same signed statement (same clock instant) sent 30 times: each is refused.
    for (let i = 0; i < 30; i += 1)
      expect(await sign(b, 'ann')).toMatchObject({ outcome: 'deny', code: 'ERR_APPROVER_RATE_LIMITED' });
    const refusals = of(await entriesOf(r.ledger), 'denial', b);
    // The first of the window always, then at most REFUSAL_RECORDS_PER_SECOND (20) in this second.
    expect(refusals).toHaveLength(1 + 20);
    expect(refusals[0]).toMatchObject({
      actor: { id: 'ann', role: 'approver' },
      payload: { code: 'ERR_APPROVER_RATE_LIMITED' },
    });
  });
});

describe('anomalies are flagged and ledgered (L7 "anomaly detection for approvals")', () => {
  it('an approval seconds after the request, preview never opened, is flagged; an opened one is not', async () => {
    const { r, approvals, sign, escalate } = await setup({ quickSec: 30, minHistory: 1000 });
    const id = await escalate(1);
    r.clock.advance(2000);
    expect(await approvals.recordView(id, 'ben', r.clock())).toBe(true);
    expect(await sign(id, 'ann')).toMatchObject({ outcome: 'ok', status: 'pending' });
    expect(await sign(id, 'ben')).toMatchObject({ outcome: 'ok', status: 'approved' });
    const flagged = of(await entriesOf(r.ledger), 'approval.flagged', id);
    expect(flagged).toHaveLength(1);
    expect(flagged[0]).toMatchObject({
      actor: { id: 'ann', role: 'ops' },
      payload: {
        approver: 'ann',
        verdict: 'approve',
        flags: ['unviewed_quick'],
        policy: 'flag',
        required: 2,
      },
    });
    // Under `flag` the decision keeps its threshold.
    const fin = of(await entriesOf(r.ledger), 'approval.finalized', id)[0];
    expect(fin?.payload).toMatchObject({ verdict: 'approve', required: 2, count: 2 });
    // Later than quickSec: not flagged even unopened.
    const late = await escalate(2);
    r.clock.advance(31_000);
    expect(await sign(late, 'cy')).toMatchObject({ outcome: 'ok' });
    expect(await flagsOf(r, late, 'cy')).toBeUndefined();
    // A view of an unknown decision or under a malformed name records nothing.
    expect(await approvals.recordView('nope', 'ann', r.clock())).toBe(false);
    expect(await approvals.recordView(late, 'a b', r.clock())).toBe(false);
  });

  it('a burst of approvals by one approver is flagged', async () => {
    const { r, sign, escalate } = await setup({ ...QUIET, burst: { count: 3, windowSec: 60 } });
    const ids: string[] = [];
    for (const i of [1, 2, 3, 4]) {
      const id = await escalate(i);
      ids.push(id);
      r.clock.advance(10_000);
      expect(await sign(id, 'ann')).toMatchObject({ outcome: 'ok' });
    }
    expect(await flagsOf(r, ids[0]!, 'ann')).toBeUndefined();
    expect(await flagsOf(r, ids[1]!, 'ann')).toBeUndefined();
    expect(await flagsOf(r, ids[2]!, 'ann')).toEqual(['burst']);
    expect(await flagsOf(r, ids[3]!, 'ann')).toEqual(['burst']);
    // Past the window the pace is ordinary again.
    r.clock.advance(120_000);
    const calm = await escalate(5);
    expect(await sign(calm, 'ann')).toMatchObject({ outcome: 'ok' });
    expect(await flagsOf(r, calm, 'ann')).toBeUndefined();
  });

  it('outside the usual tenants or UTC hours is flagged, only once there is enough history', async () => {
    const { r, sign, escalate } = await setup({ ...QUIET, minHistory: 3 });
    // Too little history: a first approval for another tenant is not unusual yet.
    const early = await escalate(1, 'globex');
    expect(await sign(early, 'ann')).toMatchObject({ outcome: 'ok' });
    expect(await flagsOf(r, early, 'ann')).toBeUndefined();
    for (const i of [2, 3]) {
      const id = await escalate(i);
      r.clock.advance(60_000);
      expect(await sign(id, 'ann')).toMatchObject({ outcome: 'ok' });
    }
    // History: 3 approvals at 12:0x UTC, tenants acme and globex.
    const initech = await escalate(4, 'initech');
    expect(await sign(initech, 'ann')).toMatchObject({ outcome: 'ok' });
    expect(await flagsOf(r, initech, 'ann')).toEqual(['new_tenant']);
    r.clock.advance(15 * 3600_000); // 03:0x UTC the next day
    const night = await escalate(5);
    expect(await sign(night, 'ann')).toMatchObject({ outcome: 'ok' });
    expect(await flagsOf(r, night, 'ann')).toEqual(['unusual_hour']);
    // ben has no history: nothing is unusual for him.
    expect(await sign(night, 'ben')).toMatchObject({ outcome: 'ok', status: 'approved' });
    expect(await flagsOf(r, night, 'ben')).toBeUndefined();
  });
});

describe('require_extra: a flagged approval needs one more approver (OE-INV-020)', () => {
  it('the threshold rises by one, the call is issued once, and the export verifies offline', async () => {
    const { r, approvals, sign, escalate } = await setup({
      quickSec: 30,
      minHistory: 1000,
      onFlag: 'require_extra',
    });
    const id = await escalate(1);
    const api = createApprovalApi(approvals, r.clock);
    expect((await api.show(id)).body).toMatchObject({ status: 'pending', required: 2 });
    expect(await sign(id, 'ann')).toMatchObject({ outcome: 'ok', status: 'pending', required: 3 });
    // The API shows the raised threshold, not the policy's.
    expect((await api.show(id)).body).toMatchObject({ status: 'pending', required: 3 });
    r.clock.advance(60_000);
    expect(await sign(id, 'ben')).toMatchObject({
      outcome: 'ok',
      status: 'pending',
      approvals: 2,
      required: 3,
    });
    const retry = request(
      'wire',
      { amount_cents: 101 },
      {
        request_id: 'req-1',
        trace_id: 'trace-1-retry',
        timestamp: r.clock(),
        request_sha256: 'b'.repeat(64),
      },
    );
    expect(await r.cp.decide(retry)).toMatchObject({ outcome: 'deny', code: 'ERR_APPROVAL_PENDING' });
    expect(await sign(id, 'cy')).toMatchObject({
      outcome: 'ok',
      status: 'approved',
      approvals: 3,
      required: 3,
    });
    const allowed = await r.cp.decide(retry);
    expect(allowed.outcome).toBe('allow');
    // Single issuance holds: the decision is issued once.
    expect(await r.cp.decide({ ...retry, trace_id: 'trace-1-again' })).toMatchObject({
      code: 'ERR_REQUEST_REPLAYED',
    });
    const entries = await entriesOf(r.ledger);
    expect(of(entries, 'approval.flagged', id)[0]?.payload).toMatchObject({
      approver: 'ann',
      policy: 'require_extra',
      required: 3,
    });
    expect(of(entries, 'approval.finalized', id)[0]?.payload).toMatchObject({ required: 3, count: 3 });
    expect(await approvals.get(id)).toMatchObject({ status: 'issued' });

    const { text } = await exportBundle({
      ledger: r.ledger,
      actor: OPERATOR,
      publicKeys: { approvers: await approvals.approverJwks() },
    });
    const codes = (b: string): string[] => {
      const report = verifyBundle(Buffer.from(b), { invariant: 'OE-INV-019' });
      return [...new Set(report.checks.flatMap((c) => c.findings.map((f) => f.code)))].sort();
    };
    expect(codes(text)).toEqual([]);
    // A finalisation with too few approvers for the flags is named, even if it says otherwise.
    const b = JSON.parse(text) as { entries: { type: string; payload: Record<string, JsonValue> }[] };
    for (const e of b.entries) {
      if (e.payload['decision_id'] !== id) continue;
      if (e.type === 'approval.finalized') {
        e.payload['required'] = 2;
        e.payload['approvers'] = ['ann', 'ben'];
      }
      if (e.type === 'envelope.issued')
        e.payload['approvals'] = (e.payload['approvals'] as string[]).slice(0, 2);
    }
    expect(codes(JSON.stringify(b))).toContain('APPROVAL_DISTINCT');
  });

  it('a flag ledgered for an approval that then failed to count still raises the threshold', async () => {
    const { r, approvals, sign, escalate } = await setup({
      quickSec: 30,
      minHistory: 1000,
      onFlag: 'require_extra',
    });
    const id = await escalate(1);
    // ann's quick, unviewed approval is flagged (ledgered), then its approval.added fails.
    r.faulty.onlyType = 'approval.added';
    r.faulty.mode = 'fail';
    expect(await sign(id, 'ann')).toMatchObject({ outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE' });
    r.faulty.mode = 'ok';
    r.faulty.onlyType = undefined;
    expect(of(await entriesOf(r.ledger), 'approval.flagged', id)[0]?.payload).toMatchObject({
      approver: 'ann',
      policy: 'require_extra',
    });
    expect(await approvals.votes(id)).toEqual([]);
    // Past quickSec ann approves again, unflagged this time: the flag on record still counts.
    r.clock.advance(31_000);
    expect(await sign(id, 'ann')).toMatchObject({ outcome: 'ok', status: 'pending', required: 3 });
    expect(await sign(id, 'ben')).toMatchObject({ outcome: 'ok', status: 'pending', required: 3 });
    expect(await approvals.get(id)).toMatchObject({ status: 'pending', required: 2 });
    expect(await sign(id, 'cy')).toMatchObject({ outcome: 'ok', status: 'approved', required: 3 });
    expect(of(await entriesOf(r.ledger), 'approval.finalized', id)[0]?.payload).toMatchObject({
      required: 3,
      count: 3,
    });
  });

  it('an unflagged decision keeps the policy threshold under require_extra', async () => {
    const { r, approvals, sign, escalate } = await setup({ ...QUIET, onFlag: 'require_extra' });
    const id = await escalate(1);
    await approvals.recordView(id, 'ann', r.clock());
    expect(await sign(id, 'ann')).toMatchObject({ outcome: 'ok', status: 'pending', required: 2 });
    expect(await sign(id, 'ben')).toMatchObject({ outcome: 'ok', status: 'approved', required: 2 });
    expect(of(await entriesOf(r.ledger), 'approval.flagged')).toEqual([]);
  });
});

describe('approvals.json "watch" is parsed strictly', () => {
  const parse = (v: unknown) => parseApprovalConfig(Buffer.from(JSON.stringify(v)));
  it('members left out keep their defaults; a given one is taken', () => {
    expect(parse({}).settings.watch).toBeUndefined();
    expect(parse({}).settings.maxWaitingPerPrincipal).toBeUndefined();
    expect(parse({ wait_per_principal_max: 0 }).settings.maxWaitingPerPrincipal).toBe(0);
    expect(parse({ watch: { on_flag: 'require_extra', rate_limit: { max: 5 } } }).settings.watch).toEqual({
      ...DEFAULT_WATCH_SETTINGS,
      onFlag: 'require_extra',
      rateLimit: { max: 5, windowSec: 3600 },
    });
  });

  it.each([
    [{ watch: { on_flag: 'ignore' } }, /on_flag/],
    [{ watch: { rate_limit: { max: 0 } } }, /rate_limit.max/],
    [{ watch: { burst: { count: 1 } } }, /burst.count/],
    [{ watch: { quick_sec: 30 } }, /unknown member watch.quick_sec/],
    [{ watch: { rate_limit: { max: 5, per: 'hour' } } }, /unknown member watch.rate_limit.per/],
    [{ wait_per_principal_max: -1 }, /wait_per_principal_max/],
    [{ wait_per_principal_max: 1.5 }, /wait_per_principal_max/],
    [{ wait_per_principal_max: 'many' }, /wait_per_principal_max/],
  ])('refuses %j', (v, why) => {
    expect(() => parse(v)).toThrow(why);
  });
});
