/**
 * The executor's enforcement path with real components (real signing keys, real SQLite nonce
 * store, real redactor) and an in-memory ExecutionLedger: SPEC §2 step 7, §3 verification
 * order, §7 scenarios 3, 6, 8, 9, 16; fault injection for every dependency (throws, hangs,
 * garbage) → deny with the right code, and the adapter is never called.
 */
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { createExecutor, createSqliteNonceStore } from '../../src/execution/index.js';
import type {
  EnvelopeLedgerContext,
  ExecutorDeps,
  LedgerRef,
  NonceStore,
  ToolAdapter,
} from '../../src/execution/index.js';
import { canonicalize, computeParamsSha256, envelopeSha256, sha256Hex } from '../../src/kernel/index.js';
import type { EnvelopeClaims } from '../../src/kernel/index.js';
import { generateSigningKey, signEnvelope } from '../../src/kernel/signing/index.js';
import { call, keys, NOW, NOW_MS, removeScratch, scratchDir, SECRET, world } from './executor-world.js';
import type { World } from './executor-world.js';
import { never, spyAdapter } from './support.js';

afterAll(removeScratch);

describe('executor: the governed path', () => {
  it('executes, appends the receipt before returning, and returns the redacted result', async () => {
    const w = world();
    const out = await createExecutor(w.deps).execute(call(w.envelope()));
    expect(out).toMatchObject({ outcome: 'executed', result: { message: 'hi' }, adapter: 'spy' });
    expect(w.spy.calls).toHaveLength(1);
    const receipts = w.ledger.ofType('execution.receipt');
    expect(receipts).toHaveLength(1);
    const p = receipts[0]!.payload;
    expect(p).toMatchObject({
      status: 'succeeded',
      adapter: 'spy',
      params_sha256: computeParamsSha256({ message: 'hi' }),
    });
    expect(p.result_sha256).toBe(sha256Hex(canonicalize({ message: 'hi' })));
    expect(Object.keys(p).sort()).toEqual(
      [
        'adapter',
        'decision_id',
        'decision_ref',
        'duration_ms',
        'jti',
        'params_sha256',
        'redactions',
        'result_sha256',
        'status',
        'tool',
        'envelope',
        'envelope_sha256',
      ].sort(),
    );
    // The consumed JWS enters the ledger with its receipt, and only then (SPEC §3).
    expect(p.envelope_sha256).toBe(envelopeSha256(p.envelope as string));
    if (out.outcome === 'executed') expect(out.receipt.index).toBeGreaterThanOrEqual(0);
  });

  it('hands the adapter a frozen copy of the verified parameters and the envelope constraints', async () => {
    const w = world();
    await createExecutor(w.deps).execute(call(w.envelope()));
    const c = w.spy.calls[0]!;
    expect(Object.isFrozen(c.params)).toBe(true);
    expect(c.constraints.timeout_ms).toBe(200);
    expect(c.spec).toEqual({ type: 'spy' });
  });
});

describe('executor: denials before the adapter (the adapter is never called)', () => {
  const cases: [string, (w: World) => unknown, string, Partial<ExecutorDeps>?][] = [
    ['no envelope (scenario 3)', () => undefined, 'ERR_ENVELOPE_MISSING'],
    ['garbage envelope', () => 'not.a.jws', 'ERR_ENVELOPE_MALFORMED'],
    ['forged signature (scenario 1)', (w) => w.envelope().slice(0, -4) + 'AAAA', 'ERR_ENVELOPE_SIGNATURE'],
    ['expired (scenario 4)', (w) => w.envelope({ iat: NOW - 200, exp: NOW - 100 }), 'ERR_ENVELOPE_EXPIRED'],
    ['other tenant (scenario 7)', (w) => w.envelope({ tenant: 'globex' }), 'ERR_ENVELOPE_TENANT_MISMATCH'],
    ['other tool (scenario 7)', (w) => w.envelope({ tool: 'transfer_funds' }), 'ERR_ENVELOPE_TOOL_MISMATCH'],
    ['other audience', (w) => w.envelope({ aud: 'executor-2' }), 'ERR_ENVELOPE_AUDIENCE'],
    [
      'unknown bundle',
      (w) => w.envelope({ policy_bundle: sha256Hex('other') }),
      'ERR_ENVELOPE_POLICY_UNKNOWN',
    ],
    [
      'unconfirmed ledger entry',
      (w) => w.envelope({ ledger: { index: 9999, entry_hash: sha256Hex('x') } }),
      'ERR_ENVELOPE_LEDGER_UNCONFIRMED',
    ],
  ];
  for (const [name, make, code] of cases) {
    it(`${name} → ${code}`, async () => {
      const w = world();
      const out = await createExecutor(w.deps).execute(call(make(w)));
      expect(out).toMatchObject({ outcome: 'deny', code });
      expect(w.spy.calls).toHaveLength(0);
      expect(w.ledger.ofType('denial').map((e) => e.payload.code)).toEqual([code]);
      expect(w.ledger.ofType('execution.receipt')).toHaveLength(0);
    });
  }

  it('parameters changed after approval (scenario 2) → ERR_ENVELOPE_PARAMS_MISMATCH', async () => {
    const w = world();
    const out = await createExecutor(w.deps).execute(call(w.envelope(), { message: 'changed' }));
    expect(out).toMatchObject({ outcome: 'deny', code: 'ERR_ENVELOPE_PARAMS_MISMATCH' });
    expect(w.spy.calls).toHaveLength(0);
  });

  it('a decision entry of another tenant does not confirm', async () => {
    const w = world();
    const env = w.envelope({ decision_id: 'dec-x' }, undefined, { decision: { tenant: 'globex' } });
    const out = await createExecutor(w.deps).execute(call(env));
    expect(out).toMatchObject({ outcome: 'deny', code: 'ERR_ENVELOPE_DECISION_MISMATCH' });
    expect(w.spy.calls).toHaveLength(0);
  });

  it('unknown adapter type or tool spec → ERR_ADAPTER_UNAVAILABLE, nonce not burnt', async () => {
    const w = world({ resolveTool: () => ({ type: 'mcp' }) });
    const env = w.envelope();
    expect(await createExecutor(w.deps).execute(call(env))).toMatchObject({
      code: 'ERR_ADAPTER_UNAVAILABLE',
    });
    expect(
      await createExecutor({ ...w.deps, resolveTool: () => undefined }).execute(call(env)),
    ).toMatchObject({ code: 'ERR_ADAPTER_UNAVAILABLE' });
    expect(
      await createExecutor({
        ...w.deps,
        resolveTool: () => {
          throw new Error('x');
        },
      }).execute(call(env)),
    ).toMatchObject({ code: 'ERR_ADAPTER_UNAVAILABLE' });
    expect(w.spy.calls).toHaveLength(0);
    // The same envelope still runs once the adapter is there.
    expect(
      await createExecutor({ ...w.deps, resolveTool: () => ({ type: 'spy' }) }).execute(call(env)),
    ).toMatchObject({ outcome: 'executed' });
  });
});

describe('executor: single use (scenario 6)', () => {
  it('a replayed envelope → ERR_NONCE_REPLAYED', async () => {
    const w = world();
    const ex = createExecutor(w.deps);
    const env = w.envelope();
    expect(await ex.execute(call(env))).toMatchObject({ outcome: 'executed' });
    expect(await ex.execute(call(env))).toMatchObject({ outcome: 'deny', code: 'ERR_NONCE_REPLAYED' });
    expect(w.spy.calls).toHaveLength(1);
  });

  it('32 concurrent replays through two executors sharing the store file → exactly one execution', async () => {
    const w = world();
    const path = join(scratchDir(), 'shared.db');
    const a = createExecutor({ ...w.deps, nonces: createSqliteNonceStore({ path, now: () => NOW_MS }) });
    const b = createExecutor({ ...w.deps, nonces: createSqliteNonceStore({ path, now: () => NOW_MS }) });
    const env = w.envelope();
    const outs = await Promise.all(Array.from({ length: 32 }, (_, i) => (i % 2 ? a : b).execute(call(env))));
    expect(outs.filter((o) => o.outcome === 'executed')).toHaveLength(1);
    expect(outs.filter((o) => o.outcome === 'deny' && o.code === 'ERR_NONCE_REPLAYED')).toHaveLength(31);
    expect(w.spy.calls).toHaveLength(1);
  });
});

describe('executor: fault injection (scenarios 8, 9)', () => {
  const broken = <T>(kind: 'throws' | 'hangs' | 'garbage', garbage: unknown): (() => Promise<T>) => {
    if (kind === 'throws') return () => Promise.reject(new Error('down'));
    if (kind === 'hangs') return () => never<T>();
    return () => Promise.resolve(garbage as T);
  };

  for (const kind of ['throws', 'hangs', 'garbage'] as const) {
    it(`nonce store ${kind} → ERR_NONCE_STORE_UNAVAILABLE, adapter never called`, async () => {
      const w = world();
      const nonces: NonceStore = { ...w.nonces, consume: broken(kind, 'yes') };
      const out = await createExecutor({ ...w.deps, nonces }).execute(call(w.envelope()));
      expect(out).toMatchObject({ outcome: 'deny', code: 'ERR_NONCE_STORE_UNAVAILABLE' });
      expect(w.spy.calls).toHaveLength(0);
      expect(w.ledger.ofType('denial').map((e) => e.payload.code)).toEqual(['ERR_NONCE_STORE_UNAVAILABLE']);
    });

    it(`ledger lookup ${kind} → ERR_LEDGER_UNAVAILABLE, adapter never called, nonce not burnt`, async () => {
      const w = world();
      const lookup = broken<EnvelopeLedgerContext>(kind, 'true');
      const ledger = { readEnvelopeContext: lookup, append: w.ledger.append.bind(w.ledger) };
      const env = w.envelope();
      const out = await createExecutor({ ...w.deps, ledger }).execute(call(env));
      expect(out).toMatchObject({ outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE' });
      expect(w.spy.calls).toHaveLength(0);
      expect(await createExecutor(w.deps).execute(call(env))).toMatchObject({ outcome: 'executed' });
    });

    it(`receipt append ${kind} → ERR_LEDGER_UNAVAILABLE and the result is withheld`, async () => {
      const w = world();
      const ledger = {
        readEnvelopeContext: w.ledger.readEnvelopeContext.bind(w.ledger),
        append: broken<LedgerRef>(kind, { index: -1, entry_hash: 'zz' }),
      };
      const out = await createExecutor({ ...w.deps, ledger }).execute(call(w.envelope()));
      expect(out).toEqual(expect.objectContaining({ outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE' }));
      expect(out).not.toHaveProperty('result');
      expect(w.spy.calls).toHaveLength(1);
    });
  }

  const adapterFaults: [string, ToolAdapter['run'], string][] = [
    ['throws', () => Promise.reject(new Error('boom')), 'ERR_TOOL_FAILED'],
    ['hangs past timeout_ms', () => never(), 'ERR_TOOL_TIMEOUT'],
    ['answers garbage', () => Promise.resolve({ outcome: 'maybe' } as never), 'ERR_TOOL_FAILED'],
    [
      'returns a non-JSON result',
      () => Promise.resolve({ outcome: 'ok', result: Number.NaN }),
      'ERR_TOOL_FAILED',
    ],
    [
      'denies with a code it may not use',
      () => Promise.resolve({ outcome: 'deny', code: 'ERR_ENVELOPE_SIGNATURE', reason: 'x' } as never),
      'ERR_TOOL_FAILED',
    ],
    [
      'returns more than max_output_bytes',
      () => Promise.resolve({ outcome: 'ok', result: 'x'.repeat(70 * 1024) }),
      'ERR_TOOL_OUTPUT_LIMIT',
    ],
  ];
  for (const [name, run, code] of adapterFaults) {
    it(`adapter ${name} → ${code}, with a failed receipt`, async () => {
      const w = world({}, spyAdapter(run));
      const out = await createExecutor(w.deps).execute(call(w.envelope()));
      expect(out).toMatchObject({ outcome: 'deny', code });
      expect(w.ledger.ofType('execution.receipt').map((e) => [e.payload.status, e.payload.code])).toEqual([
        ['failed', code],
      ]);
    });
  }

  it('an envelope that expires while its ledger context is read → ERR_ENVELOPE_EXPIRED, nonce not taken, adapter never called', async () => {
    let now = NOW_MS;
    const w = world({ now: () => now });
    const env = w.envelope();
    // The read answers once the envelope's exp and the 30 s tolerance have passed.
    const ledger = {
      readEnvelopeContext: async (q: Parameters<typeof w.ledger.readEnvelopeContext>[0]) => {
        const r = await w.ledger.readEnvelopeContext(q);
        now = NOW_MS + 90_000;
        return r;
      },
      append: w.ledger.append.bind(w.ledger),
    };
    const out = await createExecutor({ ...w.deps, ledger }).execute(call(env));
    expect(out).toMatchObject({ outcome: 'deny', code: 'ERR_ENVELOPE_EXPIRED' });
    expect(w.spy.calls).toHaveLength(0);
    expect(w.ledger.ofType('denial').map((e) => e.payload.code)).toEqual(['ERR_ENVELOPE_EXPIRED']);
    // The nonce was not taken: within its validity the same envelope still runs.
    now = NOW_MS;
    expect(await createExecutor(w.deps).execute(call(env))).toMatchObject({ outcome: 'executed' });
  });

  it('the deny stands when the denial write itself fails', async () => {
    const w = world();
    const ledger = {
      readEnvelopeContext: () => Promise.reject(new Error('down')),
      append: () => Promise.reject(new Error('down')),
    };
    expect(await createExecutor({ ...w.deps, ledger }).execute(call(w.envelope()))).toMatchObject({
      code: 'ERR_LEDGER_UNAVAILABLE',
    });
  });

  it('any unexpected exception is a deny (ERR_INTERNAL), adapter never called', async () => {
    const w = world({
      isKnownPolicyBundle: () => {
        throw new Error('x');
      },
    });
    const out = await createExecutor(w.deps).execute(call(w.envelope()));
    expect(out).toMatchObject({ outcome: 'deny', code: 'ERR_INTERNAL' });
    expect(w.spy.calls).toHaveLength(0);
    expect(await createExecutor(w.deps).execute(null as never)).toMatchObject({
      outcome: 'deny',
      code: 'ERR_INTERNAL',
    });
  });
});

describe('executor: secrets never leave in plaintext (scenario 16, OE-INV-009/010)', () => {
  beforeEach(() => undefined);

  it('redacts a secret the tool puts in its output, and the ledger never sees it', async () => {
    const leaky = spyAdapter((c) =>
      Promise.resolve({
        outcome: 'ok',
        result: { token: c.secrets!.resolve('API_KEY'), b64: Buffer.from(SECRET).toString('base64') },
      }),
    );
    const w = world({}, leaky);
    const out = await createExecutor(w.deps).execute(call(w.envelope()));
    expect(out.outcome).toBe('executed');
    expect(JSON.stringify(out)).not.toContain(SECRET);
    expect(JSON.stringify(out)).not.toContain(Buffer.from(SECRET).toString('base64'));
    expect(JSON.stringify(w.ledger.appended)).not.toContain(SECRET);
    expect(w.ledger.ofType('execution.receipt')[0]!.payload.redactions).toBe(2);
  });

  it('a secret placed in parameters is redacted from the result and absent from the ledger', async () => {
    const w = world();
    const params = { message: `please use ${SECRET}` };
    const out = await createExecutor(w.deps).execute(call(w.envelope({}, params), params));
    expect(out.outcome).toBe('executed');
    expect(JSON.stringify(out)).not.toContain(SECRET);
    expect(JSON.stringify(w.ledger.appended)).not.toContain(SECRET);
  });
});

describe('executor with the default builtins', () => {
  it('runs transfer_funds through the builtin adapter', async () => {
    const w = world();
    const params = { from_account: 'A', to_account: 'B', amount: 100, currency: 'EUR' };
    const out = await createExecutor(w.deps).execute(
      call(w.envelope({ tool: 'transfer_funds' }, params), params, 'transfer_funds'),
    );
    expect(out).toMatchObject({
      outcome: 'executed',
      adapter: 'builtin',
      result: { status: 'completed', amount: 100 },
    });
  });
});

describe('executor: reads the decision it is shown (issue 8 Why 2, L7 Boundary B)', () => {
  const cases: [string, (w: World) => string, string][] = [
    [
      'a well-signed envelope for a ledgered deny decision',
      (w) => w.envelope({}, undefined, { decision: { outcome: 'deny' } }),
      'ERR_ENVELOPE_DECISION_MISMATCH',
    ],
    [
      'an escalated decision never finalised as approved',
      (w) => w.envelope({}, undefined, { decision: { outcome: 'escalate' } }),
      'ERR_ENVELOPE_DECISION_MISMATCH',
    ],
    [
      'the allow decision of another tool',
      (w) => w.envelope({}, undefined, { decision: { tool: 'transfer_funds' } }),
      'ERR_ENVELOPE_DECISION_MISMATCH',
    ],
    [
      'the allow decision of other parameters',
      (w) => w.envelope({}, undefined, { decision: { params_sha256: computeParamsSha256({ a: 1 }) } }),
      'ERR_ENVELOPE_DECISION_MISMATCH',
    ],
    [
      'the allow decision of another request',
      (w) => w.envelope({}, undefined, { decision: { request_id: 'req-other' } }),
      'ERR_ENVELOPE_DECISION_MISMATCH',
    ],
    [
      'the allow decision of another decision id',
      (w) => w.envelope({}, undefined, { decision: { decision_id: 'dec-other' } }),
      'ERR_ENVELOPE_DECISION_MISMATCH',
    ],
    [
      'a ledger entry that is not a decision',
      (w) => w.envelope({}, undefined, { decision: { type: 'gateway.accepted' } }),
      'ERR_ENVELOPE_DECISION_MISMATCH',
    ],
    [
      'an envelope whose issuance was never recorded',
      (w) => w.envelope({}, undefined, { issued: false }),
      'ERR_ENVELOPE_NOT_ISSUED',
    ],
  ];
  for (const [name, make, code] of cases) {
    it(`${name} → ${code}, the tool never ran and the nonce is not burnt`, async () => {
      const w = world();
      const out = await createExecutor(w.deps).execute(call(make(w)));
      expect(out).toMatchObject({ outcome: 'deny', code });
      expect(w.spy.calls).toHaveLength(0);
      expect(w.ledger.ofType('denial').map((e) => e.payload.code)).toEqual([code]);
    });
  }

  it('an envelope re-signed over recorded claims is not the issued one → ERR_ENVELOPE_NOT_ISSUED', async () => {
    const w = world();
    const env = w.envelope();
    // Same claims, other JWS: the recorded digest names exactly one token.
    const [h, p] = env.split('.');
    const other = generateSigningKey();
    keys.add(other.publicJwk);
    const claims = JSON.parse(Buffer.from(p!, 'base64url').toString('utf8')) as EnvelopeClaims;
    const resigned = signEnvelope(claims, other);
    expect(resigned.split('.')[0]).not.toBe(h);
    const out = await createExecutor(w.deps).execute(call(resigned));
    expect(out).toMatchObject({ outcome: 'deny', code: 'ERR_ENVELOPE_NOT_ISSUED' });
    expect(w.spy.calls).toHaveLength(0);
  });

  it('an escalated decision finalised as approved before issuance runs', async () => {
    const w = world();
    const decision_id = 'dec-approved';
    w.ledger.addFinalized(decision_id, 'acme', 'approve');
    const env = w.envelope({ decision_id }, undefined, { decision: { outcome: 'escalate' } });
    expect(await createExecutor(w.deps).execute(call(env))).toMatchObject({ outcome: 'executed' });
  });

  it('an approval rejected is not an approval', async () => {
    const w = world();
    const decision_id = 'dec-rejected';
    w.ledger.addFinalized(decision_id, 'acme', 'reject');
    const env = w.envelope({ decision_id }, undefined, { decision: { outcome: 'escalate' } });
    expect(await createExecutor(w.deps).execute(call(env))).toMatchObject({
      code: 'ERR_ENVELOPE_DECISION_MISMATCH',
    });
    expect(w.spy.calls).toHaveLength(0);
  });
});

describe('executor: voiding (issue 8 Why 1)', () => {
  const why = { code: 'ERR_EXECUTION_UNAVAILABLE', stage: 'execution' } as const;

  it('a voided envelope can never be consumed → ERR_ENVELOPE_VOIDED, and envelope.voided is ledgered', async () => {
    const w = world();
    const ex = createExecutor(w.deps);
    const env = w.envelope();
    expect(await ex.void({ ...call(env), ...why })).toEqual({ outcome: 'voided', recorded: true });
    const voided = w.ledger.ofType('envelope.voided');
    expect(voided).toHaveLength(1);
    expect(voided[0]!.payload).toMatchObject({
      nonce_voided: true,
      code: 'ERR_EXECUTION_UNAVAILABLE',
      envelope_sha256: envelopeSha256(env),
    });
    expect(JSON.stringify(w.ledger.appended)).not.toContain(env);
    expect(await ex.execute(call(env))).toMatchObject({ outcome: 'deny', code: 'ERR_ENVELOPE_VOIDED' });
    expect(w.spy.calls).toHaveLength(0);
    // Voiding again is idempotent.
    expect(await ex.void({ ...call(env), ...why })).toMatchObject({ outcome: 'voided' });
  });

  it('a void after the consumption answers consumed (the tool may have run)', async () => {
    const w = world();
    const ex = createExecutor(w.deps);
    const env = w.envelope();
    expect(await ex.execute(call(env))).toMatchObject({ outcome: 'executed' });
    expect(await ex.void({ ...call(env), ...why })).toEqual({ outcome: 'consumed' });
    expect(w.ledger.ofType('envelope.voided')).toHaveLength(0);
  });

  it('a void racing 16 consumptions through another store connection: exactly one winner', async () => {
    const w = world();
    const path = join(scratchDir(), 'race.db');
    const a = createExecutor({ ...w.deps, nonces: createSqliteNonceStore({ path, now: () => NOW_MS }) });
    const b = createExecutor({ ...w.deps, nonces: createSqliteNonceStore({ path, now: () => NOW_MS }) });
    const env = w.envelope();
    const [voided, ...runs] = await Promise.all([
      a.void({ ...call(env), ...why }),
      ...Array.from({ length: 16 }, (_, i) => (i % 2 ? a : b).execute(call(env))),
    ]);
    const executed = runs.filter((r) => r.outcome === 'executed').length;
    expect(voided.outcome === 'voided' ? 0 : 1).toBe(executed);
    expect(w.spy.calls).toHaveLength(executed);
  });

  it('a nonce store that cannot void → deny, and the record says nonce_voided false', async () => {
    const w = world();
    const nonces: NonceStore = { ...w.nonces, void: () => Promise.reject(new Error('down')) };
    const out = await createExecutor({ ...w.deps, nonces }).void({ ...call(w.envelope()), ...why });
    expect(out).toMatchObject({ outcome: 'deny', code: 'ERR_NONCE_STORE_UNAVAILABLE' });
    expect(w.ledger.ofType('envelope.voided')[0]!.payload).toMatchObject({ nonce_voided: false });
  });

  it('only a verifying envelope can be voided (a forged one is refused)', async () => {
    const w = world();
    const forged = w.envelope().slice(0, -4) + 'AAAA';
    expect(await createExecutor(w.deps).void({ ...call(forged), ...why })).toMatchObject({
      code: 'ERR_ENVELOPE_SIGNATURE',
    });
    expect(w.ledger.ofType('envelope.voided')).toHaveLength(0);
  });
});
