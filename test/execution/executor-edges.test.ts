/**
 * Edges of the executor's fail-closed handling (FC-INV-4, OE-INV-017): callers that are not
 * objects, a void whose fields throw on read, and a tool spec whose type is not a string even
 * when an adapter is registered under that value's spelling.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { createExecutor } from '../../src/execution/index.js';
import { call, removeScratch, world } from './executor-world.js';

afterAll(removeScratch);

describe('FC-INV-4: whatever the caller hands over, the executor denies and records', () => {
  for (const input of [42, 'call', true]) {
    it(`a caller that is ${typeof input} → deny, recorded with empty fields`, async () => {
      const w = world();
      expect(await createExecutor(w.deps).execute(input as never)).toMatchObject({
        outcome: 'deny',
        code: 'ERR_ENVELOPE_MISSING',
      });
      expect(w.ledger.ofType('denial')).toMatchObject([{ tenant: '', trace_id: '', request_id: '' }]);
      expect(w.ledger.ofType('denial')[0]!.payload.tool).toBe('');
      expect(w.spy.calls).toHaveLength(0);
    });
  }

  it('a tool spec whose type is a number is no spec, even with an adapter under its spelling → ERR_ADAPTER_UNAVAILABLE', async () => {
    const w = world();
    const deps = {
      ...w.deps,
      adapters: { ...w.deps.adapters, '7': w.spy.adapter },
      resolveTool: () => ({ type: 7 }),
    };
    const out = await createExecutor(deps as never).execute(call(w.envelope()));
    expect(out).toMatchObject({ outcome: 'deny', code: 'ERR_ADAPTER_UNAVAILABLE' });
    expect(w.spy.calls).toHaveLength(0);
  });
});

describe('OE-INV-017: voiding never throws', () => {
  it('a void request whose stage throws on read → ERR_INTERNAL, and the envelope stays out of use', async () => {
    const w = world();
    const env = w.envelope();
    const input = {
      ...call(env),
      code: 'ERR_EXECUTION_UNAVAILABLE',
      get stage(): string {
        throw new Error('hostile');
      },
    };
    expect(await createExecutor(w.deps).void(input as never)).toMatchObject({
      outcome: 'deny',
      code: 'ERR_INTERNAL',
    });
    expect(await createExecutor(w.deps).execute(call(env))).toMatchObject({
      outcome: 'deny',
      code: 'ERR_ENVELOPE_VOIDED',
    });
    expect(w.spy.calls).toHaveLength(0);
  });
});
