/**
 * The offline receipt-linkage and trace-linkage checks, one finding at a time (OE-INV-015
 * "every execution must produce an immutable receipt", FC-INV-4, GEI decision before execution,
 * OE-INV-017 single use; FC-INV-6 "all execution traces include Gate, Control Plane, and
 * Execution Layer components"). Each tamper is made by the consistent forger (forge.ts), and each
 * test asserts the finding code and the entry it names.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import {
  at,
  codesOf,
  drop,
  entriesOf,
  entryAt,
  expectFinding,
  findingsOf,
  forge,
  insert,
  reissue,
  undecidedOf,
} from './forge.js';
import { makeBundle, mutable, text, type MutableBundle } from './helpers.js';
import { ISSUER_KEY, traceIdOf } from './realistic.js';
import { relink } from './relink.js';
import { verifyBundle } from '../../src/verify/index.js';

const RECEIPT = 'receipt-linkage';
const TRACE = 'trace-linkage';
let base: string;

beforeAll(async () => {
  base = (await makeBundle(11)).text;
});

const receiptOf = (b: MutableBundle): MutableBundle => entryAt(b, 'execution.receipt');

/** An entry of trace 0 for request r-0. */
const ofTrace0 = (entry: MutableBundle): MutableBundle => ({
  trace_id: traceIdOf(0),
  request_id: 'r-0',
  tenant: 'acme',
  ...entry,
});

describe('OE-INV-015 / FC-INV-4: every receipt follows an allow decision', () => {
  it('a receipt naming no decision id or no nonce: RECEIPT_BINDING', () => {
    for (const field of ['decision_id', 'jti']) {
      const { report, bundle } = forge(base, (b) => void delete receiptOf(b)['payload'][field]);
      expect(findingsOf(report, RECEIPT)).toEqual([
        expect.objectContaining({ code: 'RECEIPT_BINDING', index: at(bundle, 'execution.receipt') }),
      ]);
    }
  });

  it('no executor declared: EXECUTOR_UNDECLARED', () => {
    const { report } = forge(base, (b) => void delete b['executor']);
    expect(codesOf(report, RECEIPT)).toEqual(['EXECUTOR_UNDECLARED']);
  });

  it('GEI decision before execution: the decision recorded after the receipt: RECEIPT_NO_DECISION', () => {
    const { report, bundle } = forge(base, (b) => {
      const e = entriesOf(b);
      const [d] = e.splice(at(b, 'decision'), 1);
      e.splice(at(b, 'execution.receipt') + 1, 0, d!);
    });
    expect(findingsOf(report, RECEIPT)).toContainEqual(
      expect.objectContaining({ code: 'RECEIPT_NO_DECISION', index: at(bundle, 'execution.receipt') }),
    );
  });

  /** Trace 0's decision escalated, finalised with `verdict` just before `type` (or not at all). */
  const escalated = (verdict: string | undefined, before: string) => (b: MutableBundle) => {
    entryAt(b, 'decision')['payload']['outcome'] = 'escalate';
    if (verdict !== undefined)
      insert(
        b,
        at(b, before),
        ofTrace0({
          type: 'approval.finalized',
          actor: { id: 'control-plane', role: 'control-plane' },
          payload: { decision_id: 'd-0', verdict, required: 1, approvers: ['alice'] },
        }),
      );
  };

  it.each([
    ['without a finalisation', undefined, 'envelope.issued'],
    ['rejected', 'reject', 'envelope.issued'],
    ['approved only after the execution', 'approve', 'gateway.completed'],
  ] as const)('FC-INV-4: a receipt of an escalated decision %s: RECEIPT_DENIED', (_n, verdict, before) => {
    const { report, bundle } = forge(base, escalated(verdict, before));
    expect(findingsOf(report, RECEIPT)).toEqual([
      expect.objectContaining({ code: 'RECEIPT_DENIED', index: at(bundle, 'execution.receipt') }),
    ]);
  });

  it.each(['approve', 'break_glass'])(
    'FC-INV-4: a receipt of an escalated decision finalised %s before it passes',
    (verdict) => {
      const { report } = forge(base, escalated(verdict, 'envelope.issued'));
      expect(findingsOf(report, RECEIPT)).toEqual([]);
    },
  );

  it('FC-INV-4: a finalised approval cannot turn a denied decision into an allowed one: RECEIPT_DENIED', () => {
    const { report, bundle } = forge(base, (b) => {
      escalated('approve', 'envelope.issued')(b);
      entryAt(b, 'decision')['payload']['outcome'] = 'deny';
    });
    expect(findingsOf(report, RECEIPT)).toEqual([
      expect.objectContaining({ code: 'RECEIPT_DENIED', index: at(bundle, 'execution.receipt') }),
    ]);
  });

  it('an envelope record without readable claims leaves the window unchecked, not the check broken', () => {
    const { report } = forge(base, (b) => void delete entryAt(b, 'envelope.issued')['payload']['iat']);
    expect(findingsOf(report, RECEIPT)).toEqual([]);
  });

  it('a decision_ref that does not name the decision: RECEIPT_BINDING; none at all is allowed', () => {
    const { report, bundle } = forge(base, (b) => {
      const ref = receiptOf(b)['payload']['decision_ref'];
      receiptOf(b)['payload']['decision_ref'] = { ...ref, extra: 1 };
    });
    expectFinding(report, RECEIPT, 'RECEIPT_BINDING', [at(bundle, 'execution.receipt')]);
    const none = forge(base, (b) => void delete receiptOf(b)['payload']['decision_ref']);
    expect(findingsOf(none.report, RECEIPT)).toEqual([]);
  });
});

describe('OE-INV-017: every receipt follows its envelope, within its validity, with a single-use nonce', () => {
  it('no envelope.issued for the nonce: RECEIPT_NO_ENVELOPE; one recorded only after the run: RECEIPT_NO_ENVELOPE', () => {
    const none = forge(base, (b) => drop(b, 'envelope.issued'));
    expect(findingsOf(none.report, RECEIPT)).toEqual([
      expect.objectContaining({ code: 'RECEIPT_NO_ENVELOPE', index: at(none.bundle, 'execution.receipt') }),
    ]);
    const late = forge(base, (b) => {
      const e = entriesOf(b);
      const i = at(b, 'envelope.issued');
      [e[i], e[i + 1]] = [e[i + 1]!, e[i]!];
    });
    expect(findingsOf(late.report, RECEIPT)).toContainEqual(
      expect.objectContaining({ code: 'RECEIPT_NO_ENVELOPE', index: at(late.bundle, 'execution.receipt') }),
    );
  });

  it.each([
    ['no consumed JWS', (p: MutableBundle) => void delete p['envelope']],
    ['no digest', (p: MutableBundle) => void delete p['envelope_sha256']],
    ['a digest that is not its JWS’s', (p: MutableBundle) => void (p['envelope_sha256'] = 'ab'.repeat(32))],
  ])('a receipt with %s: RECEIPT_BINDING', (_n, edit) => {
    const { report, bundle } = forge(base, (b) => edit(receiptOf(b)['payload']));
    expect(findingsOf(report, RECEIPT)).toContainEqual(
      expect.objectContaining({ code: 'RECEIPT_BINDING', index: at(bundle, 'execution.receipt') }),
    );
  });

  it('an issuance record without a digest: the receipt is not bound to it (RECEIPT_BINDING)', () => {
    const { report, bundle } = forge(
      base,
      (b) => void delete entryAt(b, 'envelope.issued')['payload']['envelope_sha256'],
    );
    expect(findingsOf(report, RECEIPT)).toContainEqual(
      expect.objectContaining({ code: 'RECEIPT_BINDING', index: at(bundle, 'execution.receipt') }),
    );
  });

  /** An `envelope.voided` of trace 0's nonce inserted before `type`. */
  const voided = (nonceVoided: boolean, before: string) => (b: MutableBundle) =>
    insert(
      b,
      at(b, before),
      ofTrace0({
        type: 'envelope.voided',
        actor: { id: 'test-executor', role: 'executor' },
        payload: {
          decision_id: 'd-0',
          jti: 'j-0',
          envelope_sha256: receiptOf(b)['payload']['envelope_sha256'],
          code: 'ERR_EXECUTION_UNAVAILABLE',
          stage: 'execution',
          nonce_voided: nonceVoided,
        },
      }),
    );

  it('OE-INV-017: an execution after its nonce was voided: NONCE_REUSED; a void after it, or one that kept the nonce, is not', () => {
    const { report, bundle } = forge(base, voided(true, 'execution.receipt'));
    expectFinding(report, RECEIPT, 'NONCE_REUSED', [at(bundle, 'execution.receipt')]);
    expect(findingsOf(forge(base, voided(false, 'execution.receipt')).report, RECEIPT)).toEqual([]);
    expect(findingsOf(forge(base, voided(true, 'gateway.completed')).report, RECEIPT)).toEqual([]);
  });

  it('OE-INV-017: a nonce consumed twice: NONCE_REUSED at the second receipt', () => {
    const { report, bundle } = forge(base, (b) => {
      const i = at(b, 'execution.receipt');
      entriesOf(b).splice(i + 1, 0, structuredClone(entriesOf(b)[i]!));
    });
    expectFinding(report, RECEIPT, 'NONCE_REUSED', [at(bundle, 'execution.receipt') + 1]);
  });

  it.each([
    ['tool', (p: MutableBundle, e: MutableBundle) => void ((p['tool'] = 'send_email'), e)],
    ['parameters', (p: MutableBundle, e: MutableBundle) => void ((p['params_sha256'] = 'ab'.repeat(32)), e)],
    ['tenant', (_p: MutableBundle, e: MutableBundle) => void (e['tenant'] = 'globex')],
    ['decision', (p: MutableBundle, e: MutableBundle) => void ((p['decision_id'] = 'd-1'), e)],
  ])('a receipt for another %s than its envelope: RECEIPT_BINDING', (_n, edit) => {
    const { report, bundle } = forge(base, (b) => edit(receiptOf(b)['payload'], receiptOf(b)));
    expect(findingsOf(report, RECEIPT)).toContainEqual(
      expect.objectContaining({ code: 'RECEIPT_BINDING', index: at(bundle, 'execution.receipt') }),
    );
  });

  it('a receipt without tool or parameter hash is bound by its envelope alone', () => {
    const { report } = forge(base, (b) => {
      delete receiptOf(b)['payload']['tool'];
      delete receiptOf(b)['payload']['params_sha256'];
    });
    expect(findingsOf(report, RECEIPT)).toEqual([]);
  });

  it('an envelope whose recorded decision id is not the receipt’s: RECEIPT_BINDING', () => {
    const { report, bundle } = forge(base, (b) => {
      entryAt(b, 'envelope.issued')['payload']['decision_id'] = 'd-x';
    });
    expect(findingsOf(report, RECEIPT)).toContainEqual(
      expect.objectContaining({ code: 'RECEIPT_BINDING', index: at(bundle, 'execution.receipt') }),
    );
  });

  it('OE-INV-017: a run started outside the envelope validity (beyond the clock tolerance): RECEIPT_OUTSIDE_VALIDITY', () => {
    // iat = 2025-01-01T00:00:00Z, exp = iat + 60 s, tolerance 30 s; the run starts at `at` − duration.
    const runAt = (iso: string, duration: unknown = 0) =>
      forge(base, (b) => {
        receiptOf(b)['at'] = iso;
        receiptOf(b)['payload']['duration_ms'] = duration;
      });
    const outside = (iso: string, duration?: unknown) => {
      const { report, bundle } = runAt(iso, duration);
      return findingsOf(report, RECEIPT).some(
        (f) => f.code === 'RECEIPT_OUTSIDE_VALIDITY' && f.index === at(bundle, 'execution.receipt'),
      );
    };
    expect(outside('2025-01-01T00:01:29.999Z')).toBe(false);
    expect(outside('2025-01-01T00:01:30.000Z')).toBe(true);
    expect(outside('2025-01-01T00:01:31.000Z', 1001)).toBe(false);
    expect(outside('2025-01-01T00:01:31.000Z', -5)).toBe(true);
    expect(outside('2025-01-01T00:01:29.999Z', -5)).toBe(false);
    expect(outside('2025-01-01T00:01:31.000Z', 1.5)).toBe(true);
    expect(outside('2025-01-01T00:01:31.000Z', 1000.5)).toBe(true);
    expect(outside('2025-01-01T00:01:31.000Z', '1001')).toBe(true);
    expect(outside('2024-12-31T23:59:30.000Z')).toBe(false);
    expect(outside('2024-12-31T23:59:29.999Z')).toBe(true);
  });

  it('OE-INV-017: without a declared executor the window has no tolerance', () => {
    const { report, bundle } = forge(base, (b) => {
      delete b['executor'];
      receiptOf(b)['at'] = '2025-01-01T00:01:00.000Z';
      receiptOf(b)['payload']['duration_ms'] = 0;
    });
    expect(findingsOf(report, RECEIPT)).toContainEqual(
      expect.objectContaining({ code: 'RECEIPT_OUTSIDE_VALIDITY', index: at(bundle, 'execution.receipt') }),
    );
  });

  it('the envelope claims are re-read from the issuance record: a re-issued later envelope moves the window', () => {
    const { report } = forge(base, (b) => {
      reissue(b, 0, (c) => {
        c['iat'] = (c['iat'] as number) + 20;
        c['exp'] = (c['exp'] as number) + 20;
      });
      receiptOf(b)['at'] = '2025-01-01T00:01:45.000Z';
      receiptOf(b)['payload']['duration_ms'] = 0;
    });
    expect(codesOf(report, RECEIPT)).toEqual([]);
  });
});

describe('FC-INV-6: every execution trace holds Gate, Control Plane and Execution Layer records in order', () => {
  it('a receipt recorded by another role: TRACE_ROLE', () => {
    const { report, bundle } = forge(base, (b) => void (receiptOf(b)['actor'] = { id: 'x', role: 'gate' }));
    expectFinding(report, TRACE, 'TRACE_ROLE', [at(bundle, 'execution.receipt')]);
  });

  it('a Gate record by another role, or after the receipt, does not count: TRACE_GATE_MISSING', () => {
    const role = forge(base, (b) => void (entryAt(b, 'gateway.accepted')['actor']['role'] = 'executor'));
    expect(codesOf(role.report, TRACE)).toEqual(['TRACE_GATE_MISSING']);
    const late = forge(base, (b) => {
      const e = entriesOf(b);
      const [g] = e.splice(at(b, 'gateway.accepted'), 1);
      e.splice(at(b, 'execution.receipt') + 1, 0, g!);
    });
    expect(codesOf(late.report, TRACE)).toEqual(['TRACE_GATE_MISSING']);
  });

  /** Trace 0 as a background call: `gateway.queued` after its envelope, by `role`. */
  const queued =
    (role: string, position: 'after-envelope' | 'before-envelope') =>
    (b: MutableBundle): void => {
      const decisionId = entryAt(b, 'envelope.issued')['payload']['decision_id'] as string;
      insert(
        b,
        position === 'after-envelope' ? at(b, 'envelope.issued') + 1 : at(b, 'envelope.issued'),
        ofTrace0({
          type: 'gateway.queued',
          actor: { id: 'demo-agent', role },
          payload: { decision_id: decisionId, tool: 'echo', client: 'demo-agent', queue: 'local' },
        }),
      );
    };

  it('a background call: gateway.queued by the Gate after its envelope holds; by another role, or before the envelope, is named', () => {
    const ok = forge(base, queued('gate', 'after-envelope'));
    expect(findingsOf(ok.report, TRACE)).toEqual([]);
    const role = forge(base, queued('executor', 'after-envelope'));
    expect(findingsOf(role.report, TRACE)).toEqual([
      expect.objectContaining({ code: 'TRACE_ROLE', index: at(role.bundle, 'gateway.queued') }),
    ]);
    const early = forge(base, queued('gate', 'before-envelope'));
    expect(findingsOf(early.report, TRACE)).toEqual([
      expect.objectContaining({
        code: 'TRACE_CONTROL_PLANE_MISSING',
        index: at(early.bundle, 'gateway.queued'),
      }),
    ]);
  });

  it('a call accepted in the background ran without being queued: TRACE_QUEUE_MISSING (docs/jobs.md "Time limits")', () => {
    const background = (b: MutableBundle): void => {
      entryAt(b, 'gateway.accepted')['payload']['background'] = true;
    };
    // Queued after its envelope, as the Gate does: holds.
    const ok = forge(base, (b) => {
      background(b);
      queued('gate', 'after-envelope')(b);
    });
    expect(findingsOf(ok.report, TRACE)).toEqual([]);
    // Run as a synchronous call under the background ask (a compromised Gate): named.
    const sync = forge(base, background);
    expect(findingsOf(sync.report, TRACE)).toEqual([
      expect.objectContaining({ code: 'TRACE_QUEUE_MISSING', index: at(sync.bundle, 'execution.receipt') }),
    ]);
    expect(undecidedOf(sync.report, TRACE)).toEqual([]);
    // A queue record of another decision, or by another role, does not stand for it.
    const other = forge(base, (b) => {
      background(b);
      queued('gate', 'after-envelope')(b);
      entryAt(b, 'gateway.queued')['payload']['decision_id'] = 'dec_other';
    });
    expect(codesOf(other.report, TRACE)).toContain('TRACE_QUEUE_MISSING');
    const role = forge(base, (b) => {
      background(b);
      queued('executor', 'after-envelope')(b);
    });
    expect(codesOf(role.report, TRACE)).toEqual(
      expect.arrayContaining(['TRACE_ROLE', 'TRACE_QUEUE_MISSING']),
    );
  });

  it('a completion naming another result than the receipt: TRACE_RESULT_MISMATCH', () => {
    const { report, bundle } = forge(base, (b) => {
      const done = entryAt(b, 'gateway.completed');
      done['payload']['decision_id'] = receiptOf(b)['payload']['decision_id'];
      done['payload']['result_sha256'] = 'e'.repeat(64);
    });
    expect(findingsOf(report, TRACE)).toEqual([
      expect.objectContaining({ code: 'TRACE_RESULT_MISMATCH', index: at(bundle, 'gateway.completed') }),
    ]);
  });

  it('no Control Plane record between the Gate record and the receipt: TRACE_CONTROL_PLANE_MISSING', () => {
    const role = forge(base, (b) => {
      entryAt(b, 'decision')['actor']['role'] = 'gate';
      entryAt(b, 'envelope.issued')['actor']['role'] = 'gate';
    });
    expect(findingsOf(role.report, TRACE)).toEqual([
      expect.objectContaining({
        code: 'TRACE_CONTROL_PLANE_MISSING',
        index: at(role.bundle, 'execution.receipt'),
      }),
    ]);
    const before = forge(base, (b) => {
      const e = entriesOf(b);
      const [g] = e.splice(at(b, 'gateway.accepted'), 1);
      e.splice(at(b, 'execution.receipt'), 0, g!);
    });
    expect(codesOf(before.report, TRACE)).toEqual(['TRACE_CONTROL_PLANE_MISSING']);
    // Either Control Plane record suffices.
    const envelopeOnly = forge(base, (b) => void (entryAt(b, 'decision')['actor']['role'] = 'gate'));
    expect(findingsOf(envelopeOnly.report, TRACE)).toEqual([]);
    const decisionOnly = forge(base, (b) => void (entryAt(b, 'envelope.issued')['actor']['role'] = 'gate'));
    expect(findingsOf(decisionOnly.report, TRACE)).toEqual([]);
  });

  it('a completion by another role, or before the receipt, does not count: TRACE_COMPLETION_MISSING', () => {
    const role = forge(base, (b) => void (entryAt(b, 'gateway.completed')['actor']['role'] = 'executor'));
    expect(codesOf(role.report, TRACE)).toEqual(['TRACE_COMPLETION_MISSING']);
    const early = forge(base, (b) => {
      const e = entriesOf(b);
      const [c] = e.splice(at(b, 'gateway.completed'), 1);
      e.splice(at(b, 'execution.receipt'), 0, c!);
    });
    expect(codesOf(early.report, TRACE)).toEqual(['TRACE_COMPLETION_MISSING']);
    // gateway.failed closes a trace as well.
    const failed = forge(base, (b) => {
      const c = entryAt(b, 'gateway.completed');
      c['type'] = 'gateway.failed';
      c['payload'] = {
        decision_id: 'd-0',
        outcome: 'failed',
        code: 'ERR_TOOL_FAILED',
        tool: 'echo',
        client: 'agent-1',
      };
    });
    expect(findingsOf(failed.report, TRACE)).toEqual([]);
  });
});

describe('SPEC §5: a partial bundle leaves a receipt’s links outside it undecided, not failed', () => {
  /** Applies `tamper`, rebuilds the bundle consistently, then presents it as the export of trace 0 (partial). */
  function partial(tamper: (b: MutableBundle) => void) {
    const b = mutable(base);
    tamper(b);
    const { vkey } = relink(b, ISSUER_KEY);
    b['scope'] = { kind: 'trace', trace_id: traceIdOf(0) };
    const report = verifyBundle(text(b), { trustedKey: vkey });
    const pick = (fs: readonly { code: string; index?: number; partial?: true }[]) =>
      fs.map((f) => ({ code: f.code, index: f.index, partial: f.partial }));
    return {
      bundle: b,
      findings: pick(findingsOf(report, RECEIPT)),
      undecided: pick(undecidedOf(report, RECEIPT)),
    };
  }

  it('no decision record in the bundle: RECEIPT_NO_DECISION, undecided', () => {
    const r = partial((b) => drop(b, 'decision'));
    expect(r.findings).toEqual([]);
    expect(r.undecided).toEqual([
      { code: 'RECEIPT_NO_DECISION', index: at(r.bundle, 'execution.receipt'), partial: true },
    ]);
  });

  it('no envelope.issued record in the bundle: RECEIPT_NO_ENVELOPE, undecided', () => {
    const r = partial((b) => drop(b, 'envelope.issued'));
    expect(r.findings).toEqual([]);
    expect(r.undecided).toEqual([
      { code: 'RECEIPT_NO_ENVELOPE', index: at(r.bundle, 'execution.receipt'), partial: true },
    ]);
  });

  it('OE-INV-017: an envelope recorded only after the run is a finding even in a partial bundle', () => {
    const r = partial((b) => {
      const e = entriesOf(b);
      const i = at(b, 'envelope.issued');
      [e[i], e[i + 1]] = [e[i + 1]!, e[i]!];
    });
    expect(r.undecided).toEqual([]);
    expect(r.findings).toContainEqual({
      code: 'RECEIPT_NO_ENVELOPE',
      index: at(r.bundle, 'execution.receipt'),
      partial: undefined,
    });
  });

  it('the untouched trace has nothing undecided', () => {
    const r = partial(() => undefined);
    expect(r.findings).toEqual([]);
    expect(r.undecided).toEqual([]);
  });
});

describe('OE-INV-015: an executor is needed only to check receipts', () => {
  it('a bundle with no receipt and no declared executor: no EXECUTOR_UNDECLARED', () => {
    const { report } = forge(base, (b) => {
      delete b['executor'];
      b['entries'] = entriesOf(b).filter((e) => e['type'] !== 'execution.receipt');
    });
    expect(findingsOf(report, RECEIPT)).toEqual([]);
  });
});
