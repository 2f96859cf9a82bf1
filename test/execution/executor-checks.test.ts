/**
 * The executor's own checks pinned one by one (issue 13): the re-hash of exactly the parameters
 * that run (SPEC §2 step 7), the receipt's link to its decision (OE-INV-015), denial records
 * that name the verified call rather than the caller's claims (FC-INV-4), single use and voiding
 * (OE-INV-017), and the ledger checks of L7 Boundary B. Real keys, a real SQLite nonce store,
 * an in-memory ExecutionLedger.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createExecutor } from '../../src/execution/index.js';
import type { ExecutionInput } from '../../src/execution/index.js';
import { computeParamsSha256 } from '../../src/kernel/index.js';
import type { EnvelopeClaims, JsonValue } from '../../src/kernel/index.js';
import { call, removeScratch, world } from './executor-world.js';

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
