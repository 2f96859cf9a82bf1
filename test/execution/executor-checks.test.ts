/**
 * The executor's own checks pinned one by one (issue 13): the re-hash of exactly the parameters
 * that run (SPEC §2 step 7), the receipt's link to its decision (OE-INV-015), denial records
 * that name the verified call rather than the caller's claims (FC-INV-4), single use and voiding
 * (OE-INV-017), and the ledger checks of L7 Boundary B. Real keys, a real SQLite nonce store,
 * an in-memory ExecutionLedger.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createExecutor, createRedactor, REDACTED_SECRET } from '../../src/execution/index.js';
import type { ExecutionInput, NonceStore } from '../../src/execution/index.js';
import {
  computeParamsSha256,
  envelopeSha256,
  MAX_OUTPUT_BYTES,
  MAX_RESULT_DEPTH,
  sha256Hex,
} from '../../src/kernel/index.js';
import type { EnvelopeClaims, JsonValue } from '../../src/kernel/index.js';
import { BUNDLE, call, NOW_MS, removeScratch, world } from './executor-world.js';
import { constraints, never, spyAdapter } from './support.js';

afterAll(removeScratch);

const claimsOf = (jws: string): EnvelopeClaims =>
  JSON.parse(Buffer.from(jws.split('.')[1]!, 'base64url').toString('utf8')) as EnvelopeClaims;

/**
 * `base` with some fields that answer `first` on their first read and `later` on every read
 * after it: a caller whose claims shift between the reads of the executor.
 */
function shifting(
  base: ExecutionInput,
  fields: { readonly [K in keyof ExecutionInput]?: readonly [ExecutionInput[K], ExecutionInput[K]] },
): ExecutionInput {
  const input = { ...base };
  for (const [name, [first, later]] of Object.entries(fields) as [string, [unknown, unknown]][]) {
    let reads = 0;
    Object.defineProperty(input, name, { enumerable: true, get: () => (reads++ === 0 ? first : later) });
  }
  return input;
}

describe('SPEC §2 step 7: the Execution Layer re-hashes exactly the parameters it is about to run', () => {
  const approved: JsonValue = { message: 'hi' };
  const swapped: JsonValue = { message: 'wire everything to the attacker' };

  it('other parameters handed over after the envelope verified → ERR_ENVELOPE_PARAMS_MISMATCH, the tool never ran', async () => {
    const w = world();
    const env = w.envelope({}, approved);
    const out = await createExecutor(w.deps).execute(
      shifting(call(env, approved), { params: [approved, swapped] }),
    );
    expect(out).toMatchObject({ outcome: 'deny', code: 'ERR_ENVELOPE_PARAMS_MISMATCH' });
    expect(w.spy.calls).toHaveLength(0);
    expect(w.ledger.ofType('execution.receipt')).toHaveLength(0);
    expect(w.ledger.ofType('denial').map((e) => e.payload.code)).toEqual(['ERR_ENVELOPE_PARAMS_MISMATCH']);
    // Nothing was consumed: the honest call with the same envelope still runs.
    expect(await createExecutor(w.deps).execute(call(env, approved))).toMatchObject({ outcome: 'executed' });
  });

  it('a parameter value that changes after the envelope verified → ERR_ENVELOPE_PARAMS_MISMATCH, the tool never ran', async () => {
    const w = world();
    const env = w.envelope({}, approved);
    let reads = 0;
    const params = {} as Record<string, JsonValue>;
    Object.defineProperty(params, 'message', {
      enumerable: true,
      get: () => (reads++ === 0 ? 'hi' : 'changed'),
    });
    const out = await createExecutor(w.deps).execute(call(env, params));
    expect(out).toMatchObject({ outcome: 'deny', code: 'ERR_ENVELOPE_PARAMS_MISMATCH' });
    expect(w.spy.calls).toHaveLength(0);
  });

  it('the adapter gets a frozen copy of the hashed parameters, never the caller object read again', async () => {
    const w = world();
    const env = w.envelope({}, approved);
    let reads = 0;
    const params = {} as Record<string, JsonValue>;
    Object.defineProperty(params, 'message', {
      enumerable: true,
      get: () => (reads++ < 2 ? 'hi' : 'changed'),
    });
    const out = await createExecutor(w.deps).execute(call(env, params));
    expect(out).toMatchObject({ outcome: 'executed', result: approved });
    expect(w.spy.calls.map((c) => c.params)).toEqual([approved]);
    expect(w.ledger.ofType('execution.receipt')[0]!.payload.params_sha256).toBe(
      computeParamsSha256(approved),
    );
  });
});

describe('OE-INV-015: the execution receipt names its decision', () => {
  it('a succeeded receipt links the decision entry the envelope points at, and its claims', async () => {
    const w = world();
    const env = w.envelope();
    const c = claimsOf(env);
    const out = await createExecutor(w.deps).execute(call(env));
    expect(out).toMatchObject({
      outcome: 'executed',
      decision_id: c.decision_id,
      jti: c.jti,
      trace_id: c.trace_id,
      request_id: c.request_id,
      redactions: 0,
    });
    expect(Object.isFrozen(out)).toBe(true);
    // An execution is not a denial: nothing but the receipt is written.
    expect(w.ledger.appended.map((e) => e.type)).toEqual(['execution.receipt']);
    const [receipt] = w.ledger.ofType('execution.receipt');
    expect(receipt!.payload.decision_ref).toEqual({ index: c.ledger.index, entry_hash: c.ledger.entry_hash });
    expect(receipt!.payload).toMatchObject({ decision_id: c.decision_id, jti: c.jti, tool: 'echo' });
    expect(receipt).toMatchObject({
      tenant: 'acme',
      trace_id: c.trace_id,
      request_id: c.request_id,
      actor: { id: 'executor-1', role: 'executor' },
    });
  });

  it('a failed receipt links its decision too', async () => {
    const w = world();
    const failing = createExecutor({
      ...w.deps,
      adapters: { spy: { run: () => Promise.reject(new Error('boom')) } },
    });
    const env = w.envelope();
    const c = claimsOf(env);
    expect(await failing.execute(call(env))).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_FAILED' });
    const [receipt] = w.ledger.ofType('execution.receipt');
    expect(receipt!.payload).toMatchObject({
      status: 'failed',
      code: 'ERR_TOOL_FAILED',
      adapter: 'spy',
      decision_id: c.decision_id,
      decision_ref: { index: c.ledger.index, entry_hash: c.ledger.entry_hash },
    });
  });
});

describe('FC-INV-4: a denial after verification records the verified call, not the caller claims', () => {
  it('tenant and tool read differently by the caller are recorded as the envelope states them', async () => {
    const w = world();
    const env = w.envelope({}, undefined, { issued: false });
    const c = claimsOf(env);
    // The first read of each field (the denial trail) claims another tenant and tool; the
    // verifier's read sees the envelope's, so the envelope verifies and the ledger check denies.
    const input = shifting(call(env), { tenant: ['globex', 'acme'], tool: ['transfer_funds', 'echo'] });
    const out = await createExecutor(w.deps).execute(input);
    expect(out).toMatchObject({ outcome: 'deny', code: 'ERR_ENVELOPE_NOT_ISSUED' });
    expect(w.spy.calls).toHaveLength(0);
    const [denial] = w.ledger.ofType('denial');
    expect(denial).toMatchObject({
      tenant: 'acme',
      trace_id: c.trace_id,
      request_id: c.request_id,
      payload: {
        code: 'ERR_ENVELOPE_NOT_ISSUED',
        stage: 'execution',
        tool: 'echo',
        decision_id: c.decision_id,
        params_sha256: c.params_sha256,
      },
    });
  });

  it('a denial before verification records what the caller claimed, bounded, and no claims', async () => {
    const w = world();
    const out = await createExecutor(w.deps).execute({
      envelope: 'not.a.jws',
      tool: 'x'.repeat(300),
      tenant: 'globex',
      params: {},
      trace_id: 't-1',
      request_id: 'r-1',
    });
    expect(out).toMatchObject({ outcome: 'deny', code: 'ERR_ENVELOPE_MALFORMED' });
    const [denial] = w.ledger.ofType('denial');
    expect(denial).toMatchObject({ tenant: 'globex', trace_id: 't-1', request_id: 'r-1' });
    expect(denial!.payload.tool).toBe('x'.repeat(256));
    expect(denial!.payload).not.toHaveProperty('decision_id');
    expect(denial!.payload).not.toHaveProperty('params_sha256');
  });
});

describe('SPEC §2 step 7: the adapter runs with the envelope’s grant, or not at all', () => {
  it('an envelope granting no time never reaches the adapter → ERR_TOOL_TIMEOUT, with a failed receipt', async () => {
    const w = world();
    const env = w.envelope({ constraints: constraints({ timeout_ms: 0 }) });
    expect(await createExecutor(w.deps).execute(call(env))).toMatchObject({
      outcome: 'deny',
      code: 'ERR_TOOL_TIMEOUT',
    });
    expect(w.spy.calls).toHaveLength(0);
    expect(w.ledger.ofType('execution.receipt').map((e) => e.payload.code)).toEqual(['ERR_TOOL_TIMEOUT']);
  });

  it('the adapter gets the grant plus the grace: a 1 ms grant still runs', async () => {
    const w = world();
    const env = w.envelope({ constraints: constraints({ timeout_ms: 1 }) });
    expect(await createExecutor(w.deps).execute(call(env))).toMatchObject({ outcome: 'executed' });
  });

  it('without a configured grace the default applies', async () => {
    const w = world({ timeouts: { ledgerMs: 100, nonceMs: 100 } });
    expect(await createExecutor(w.deps).execute(call(w.envelope()))).toMatchObject({ outcome: 'executed' });
  });

  it('no secret resolver configured: the adapter gets none', async () => {
    const w = world();
    const { secrets: _omitted, ...deps } = w.deps;
    await createExecutor(deps).execute(call(w.envelope()));
    expect(w.spy.calls).toHaveLength(1);
    expect(w.spy.calls[0]).not.toHaveProperty('secrets');
  });

  it('the configured secret resolver is handed to the adapter', async () => {
    const w = world();
    await createExecutor(w.deps).execute(call(w.envelope()));
    expect(w.spy.calls[0]!.secrets).toBe(w.deps.secrets);
    expect(w.spy.calls[0]!.tool).toBe('echo');
  });

  it('output of exactly max_output_bytes (UTF-8 bytes) passes; one byte more → ERR_TOOL_OUTPUT_LIMIT', async () => {
    // "é" is two UTF-8 bytes: the limit counts bytes, not characters.
    const text = (bytes: number) => 'é'.repeat((bytes - 2) / 2);
    const answer = (s: string) => spyAdapter(() => Promise.resolve({ outcome: 'ok', result: s }));
    const at = world({}, answer(text(64)));
    const k = constraints({ timeout_ms: 200, max_output_bytes: 64 });
    expect(await createExecutor(at.deps).execute(call(at.envelope({ constraints: k })))).toMatchObject({
      outcome: 'executed',
    });
    const over = world({}, answer(`${text(64)}x`));
    expect(await createExecutor(over.deps).execute(call(over.envelope({ constraints: k })))).toMatchObject({
      outcome: 'deny',
      code: 'ERR_TOOL_OUTPUT_LIMIT',
    });
  });

  it('a result that redaction makes longer than max_output_bytes → ERR_TOOL_OUTPUT_LIMIT, nothing returned', async () => {
    // A short secret's marker is longer than the secret: the limit holds for what leaves.
    const k = constraints({ timeout_ms: 200, max_output_bytes: 64 });
    const redactor = createRedactor({ secrets: () => ['xy'] });
    const answer = (s: string) => spyAdapter(() => Promise.resolve({ outcome: 'ok', result: s }));
    const fits = world({ redactor }, answer('xy'.repeat(2)));
    expect(await createExecutor(fits.deps).execute(call(fits.envelope({ constraints: k })))).toMatchObject({
      outcome: 'executed',
      result: `${REDACTED_SECRET}${REDACTED_SECRET}`,
    });
    const w = world({ redactor }, answer('xy'.repeat(4)));
    const out = await createExecutor(w.deps).execute(call(w.envelope({ constraints: k })));
    expect(out).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_OUTPUT_LIMIT' });
    expect(out).not.toHaveProperty('result');
    expect(w.ledger.ofType('execution.receipt').map((e) => [e.payload.status, e.payload.code])).toEqual([
      ['failed', 'ERR_TOOL_OUTPUT_LIMIT'],
    ]);
  });

  it(`a result nested ${MAX_RESULT_DEPTH} levels deep passes; one level more → ERR_TOOL_OUTPUT_LIMIT`, async () => {
    // Every answer carrying it (the client's, the Execution Layer's to a Gate) stays readable.
    const nested = (levels: number): JsonValue => {
      let v: JsonValue = 1;
      for (let i = 0; i < levels; i += 1) v = i % 2 === 0 ? [v] : { v };
      return v;
    };
    const answer = (v: JsonValue) => spyAdapter(() => Promise.resolve({ outcome: 'ok', result: v }));
    const at = world({}, answer(nested(MAX_RESULT_DEPTH)));
    expect(await createExecutor(at.deps).execute(call(at.envelope()))).toMatchObject({ outcome: 'executed' });
    const deeper = world({}, answer(nested(MAX_RESULT_DEPTH + 1)));
    const out = await createExecutor(deeper.deps).execute(call(deeper.envelope()));
    expect(out).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_OUTPUT_LIMIT' });
    expect(deeper.ledger.ofType('execution.receipt').map((e) => e.payload.code)).toEqual([
      'ERR_TOOL_OUTPUT_LIMIT',
    ]);
  });

  it('an envelope granting more than MAX_OUTPUT_BYTES still gets no larger result', async () => {
    const k = constraints({ timeout_ms: 2000, max_output_bytes: 2 * MAX_OUTPUT_BYTES });
    const answer = (s: string) => spyAdapter(() => Promise.resolve({ outcome: 'ok', result: s }));
    const at = world({}, answer('a'.repeat(MAX_OUTPUT_BYTES - 2)));
    expect(await createExecutor(at.deps).execute(call(at.envelope({ constraints: k })))).toMatchObject({
      outcome: 'executed',
    });
    const over = world({}, answer('a'.repeat(MAX_OUTPUT_BYTES - 1)));
    expect(await createExecutor(over.deps).execute(call(over.envelope({ constraints: k })))).toMatchObject({
      outcome: 'deny',
      code: 'ERR_TOOL_OUTPUT_LIMIT',
    });
  });

  it('a redactor that fails withholds the result → ERR_INTERNAL, with a failed receipt', async () => {
    const w = world({
      redactor: {
        redact: () => {
          throw new Error('redactor down');
        },
      } as never,
    });
    const out = await createExecutor(w.deps).execute(call(w.envelope()));
    expect(out).toMatchObject({ outcome: 'deny', code: 'ERR_INTERNAL' });
    expect(out).not.toHaveProperty('result');
    expect(w.ledger.ofType('execution.receipt').map((e) => [e.payload.status, e.payload.code])).toEqual([
      ['failed', 'ERR_INTERNAL'],
    ]);
  });

  for (const code of ['ERR_SANDBOX_UNAVAILABLE', 'ERR_PARAMS_INVALID', 'ERR_TOOL_TIMEOUT'] as const) {
    it(`an adapter denying with ${code} → ${code}, with a failed receipt`, async () => {
      const w = world(
        {},
        spyAdapter(() => Promise.resolve({ outcome: 'deny', code, reason: 'r' })),
      );
      expect(await createExecutor(w.deps).execute(call(w.envelope()))).toMatchObject({
        outcome: 'deny',
        code,
      });
      expect(w.ledger.ofType('execution.receipt').map((e) => e.payload.code)).toEqual([code]);
    });
  }

  it('a failed run whose receipt cannot be appended → ERR_LEDGER_UNAVAILABLE', async () => {
    const w = world(
      {},
      spyAdapter(() => Promise.reject(new Error('boom'))),
    );
    const ledger = {
      readEnvelopeContext: w.ledger.readEnvelopeContext.bind(w.ledger),
      append: () => Promise.resolve({ index: -1, entry_hash: 'zz' }),
    };
    const out = await createExecutor({ ...w.deps, ledger }).execute(call(w.envelope()));
    expect(out).toMatchObject({ outcome: 'deny', code: 'ERR_LEDGER_UNAVAILABLE' });
  });
});

describe('SPEC §2 step 7: the adapter is resolved from the pinned bundle before the nonce is burnt', () => {
  const specs: [string, unknown][] = [
    ['null', null],
    ['a string', 'spy'],
    ['a spec with a numeric type', { type: 7 }],
    ['a function carrying a type', Object.assign(() => undefined, { type: 'spy' })],
    ['an inherited adapter name', { type: 'toString' }],
    ['a prototype adapter name', { type: '__proto__' }],
  ];
  for (const [name, spec] of specs) {
    it(`${name} → ERR_ADAPTER_UNAVAILABLE, the nonce not burnt`, async () => {
      const w = world();
      const env = w.envelope();
      const out = await createExecutor({ ...w.deps, resolveTool: () => spec as never }).execute(call(env));
      expect(out).toMatchObject({ outcome: 'deny', code: 'ERR_ADAPTER_UNAVAILABLE' });
      expect(await createExecutor(w.deps).execute(call(env))).toMatchObject({ outcome: 'executed' });
    });
  }

  it('the tool is resolved under the envelope’s policy bundle and tool', async () => {
    const w = world();
    const asked: [string, string][] = [];
    const resolveTool = (bundle: string, tool: string) => {
      asked.push([bundle, tool]);
      return { type: 'spy' };
    };
    await createExecutor({ ...w.deps, resolveTool }).execute(call(w.envelope()));
    expect(asked).toEqual([[BUNDLE, 'echo']]);
  });
});

describe('OE-INV-015: the receipt records the run’s duration on the injected clock', () => {
  it('duration_ms is the clock time the run took, and never negative', async () => {
    let t = NOW_MS;
    const slow = spyAdapter((c) => {
      t += 25;
      return Promise.resolve({ outcome: 'ok', result: c.params });
    });
    const w = world({ now: () => t }, slow);
    const out = await createExecutor(w.deps).execute(call(w.envelope()));
    expect(out).toMatchObject({ outcome: 'executed', duration_ms: 25 });
    expect(w.ledger.ofType('execution.receipt')[0]!.payload.duration_ms).toBe(25);

    const back = spyAdapter((c) => {
      t -= 10;
      return Promise.resolve({ outcome: 'ok', result: c.params });
    });
    const w2 = world({ now: () => t }, back);
    expect(await createExecutor(w2.deps).execute(call(w2.envelope()))).toMatchObject({ duration_ms: 0 });
    expect(w2.ledger.ofType('execution.receipt')[0]!.payload.duration_ms).toBe(0);
  });

  it('the executed answer carries the receipt reference the ledger confirmed', async () => {
    const w = world();
    const out = await createExecutor(w.deps).execute(call(w.envelope()));
    const receipt = w.ledger.ofType('execution.receipt')[0]!;
    expect(out).toMatchObject({
      outcome: 'executed',
      receipt: { index: expect.any(Number) as number, entry_hash: sha256Hex(JSON.stringify(receipt)) },
    });
  });
});

describe('OE-INV-017, SPEC §3: voiding an envelope whose call failed after issuance', () => {
  const why = { code: 'ERR_EXECUTION_UNAVAILABLE', stage: 'execution' } as const;

  it('the envelope.voided entry names the verified call, the digest and why', async () => {
    const w = world();
    const env = w.envelope();
    const c = claimsOf(env);
    const out = await createExecutor(w.deps).void({
      ...call(env),
      code: 'ERR_TOOL_TIMEOUT',
      stage: `gateway${'x'.repeat(100)}`,
    });
    expect(out).toEqual({ outcome: 'voided', recorded: true });
    const [entry] = w.ledger.ofType('envelope.voided');
    expect(entry).toMatchObject({
      tenant: 'acme',
      trace_id: c.trace_id,
      request_id: c.request_id,
      actor: { id: 'executor-1', role: 'executor' },
    });
    expect(entry!.payload).toMatchObject({
      decision_id: c.decision_id,
      jti: c.jti,
      envelope_sha256: envelopeSha256(env),
      code: 'ERR_TOOL_TIMEOUT',
      stage: `gateway${'x'.repeat(57)}`,
      nonce_voided: true,
    });
  });

  it('a stage that is not a string is recorded empty', async () => {
    const w = world();
    await createExecutor(w.deps).void({ ...call(w.envelope()), code: 'ERR_TOOL_FAILED', stage: 7 as never });
    expect(w.ledger.ofType('envelope.voided')[0]!.payload.stage).toBe('');
  });

  it('voided but the entry not confirmed → voided, recorded false; the envelope still never runs', async () => {
    const w = world();
    const env = w.envelope();
    const ledger = {
      readEnvelopeContext: w.ledger.readEnvelopeContext.bind(w.ledger),
      append: () => Promise.resolve({ index: 1, entry_hash: 'not a hash' }),
    };
    expect(await createExecutor({ ...w.deps, ledger }).void({ ...call(env), ...why })).toEqual({
      outcome: 'voided',
      recorded: false,
    });
    expect(await createExecutor(w.deps).execute(call(env))).toMatchObject({
      outcome: 'deny',
      code: 'ERR_ENVELOPE_VOIDED',
    });
    expect(w.spy.calls).toHaveLength(0);
  });

  const broken: [string, () => Promise<never>][] = [
    ['hangs', () => never()],
    ['answers garbage', () => Promise.resolve('maybe' as never)],
  ];
  for (const [name, voidFn] of broken) {
    it(`a nonce store that ${name} → ERR_NONCE_STORE_UNAVAILABLE, recorded as not voided`, async () => {
      const w = world();
      const nonces: NonceStore = { ...w.nonces, void: voidFn };
      const out = await createExecutor({ ...w.deps, nonces }).void({ ...call(w.envelope()), ...why });
      expect(out).toMatchObject({ outcome: 'deny', code: 'ERR_NONCE_STORE_UNAVAILABLE' });
      expect(w.ledger.ofType('envelope.voided').map((e) => e.payload.nonce_voided)).toEqual([false]);
    });
  }

  it('an envelope for another call cannot be voided through this one', async () => {
    const w = world();
    const env = w.envelope();
    expect(await createExecutor(w.deps).void({ ...call(env, { message: 'other' }), ...why })).toMatchObject({
      outcome: 'deny',
      code: 'ERR_ENVELOPE_PARAMS_MISMATCH',
    });
    expect(await createExecutor(w.deps).execute(call(env))).toMatchObject({ outcome: 'executed' });
  });

  it('an unexpected exception while voiding is a deny (ERR_INTERNAL), never a throw', async () => {
    const w = world({
      isKnownPolicyBundle: () => {
        throw new Error('x');
      },
    });
    expect(await createExecutor(w.deps).void({ ...call(w.envelope()), ...why })).toMatchObject({
      outcome: 'deny',
      code: 'ERR_INTERNAL',
    });
  });
});

describe('OE-INV-017: single use through the executor', () => {
  it('a consumed envelope presented again → ERR_NONCE_REPLAYED, recorded with the verified call', async () => {
    const w = world();
    const ex = createExecutor(w.deps);
    const env = w.envelope();
    const c = claimsOf(env);
    expect(await ex.execute(call(env))).toMatchObject({ outcome: 'executed' });
    expect(await ex.execute(call(env))).toMatchObject({ outcome: 'deny', code: 'ERR_NONCE_REPLAYED' });
    expect(w.spy.calls).toHaveLength(1);
    expect(w.ledger.ofType('denial')).toMatchObject([
      { tenant: 'acme', payload: { code: 'ERR_NONCE_REPLAYED', decision_id: c.decision_id, tool: 'echo' } },
    ]);
  });

  it('the consumption is recorded under the envelope’s jti, tenant, exp and decision', async () => {
    const w = world();
    const seen: unknown[] = [];
    const nonces: NonceStore = {
      ...w.nonces,
      consume: (i) => {
        seen.push(i);
        return w.nonces.consume(i);
      },
    };
    const env = w.envelope();
    const c = claimsOf(env);
    await createExecutor({ ...w.deps, nonces }).execute(call(env));
    expect(seen).toEqual([{ jti: c.jti, tenant: 'acme', exp: c.exp, decision_id: c.decision_id }]);
  });
});

describe('FC-INV-4: a caller whose fields cannot be read is still denied and recorded', () => {
  it('a throwing field leaves the others for the denial record', async () => {
    const w = world();
    const input = {
      envelope: undefined,
      get tenant(): string {
        throw new Error('hostile');
      },
      tool: 'echo',
      params: {},
      trace_id: 't-9',
      request_id: 'r-9',
    };
    expect(await createExecutor(w.deps).execute(input)).toMatchObject({
      outcome: 'deny',
      code: 'ERR_INTERNAL',
    });
    expect(w.ledger.ofType('denial')).toMatchObject([
      { tenant: '', trace_id: 't-9', request_id: 'r-9', payload: { tool: 'echo' } },
    ]);
  });

  it('a field that is a list of strings is recorded empty', async () => {
    const w = world();
    await createExecutor(w.deps).execute({ ...call('x'), tenant: ['globex'] } as never);
    expect(w.ledger.ofType('denial')).toMatchObject([{ tenant: '' }]);
  });

  it('fields that are not strings are recorded empty', async () => {
    const w = world();
    await createExecutor(w.deps).execute({
      envelope: 5,
      tool: 5,
      tenant: 5,
      params: {},
      trace_id: 5,
    } as never);
    expect(w.ledger.ofType('denial')).toMatchObject([
      { tenant: '', trace_id: '', request_id: '', payload: { code: 'ERR_ENVELOPE_MALFORMED', tool: '' } },
    ]);
  });
});
