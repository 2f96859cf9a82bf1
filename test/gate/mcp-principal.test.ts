/**
 * The Gate's entry for MCP principals (SPEC §2 step 1, FC-INV-3, FC-INV-5): the Gate mints the
 * request id and nonce, claims them, and runs the same steps as a signed call. Faults of the
 * replay store, a secret in the parameters, and a throwing Control Plane deny with a code and a
 * record attributed to the principal; nothing reaches the Execution Layer.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Principal } from '../../src/gate/index.js';
import { startHarness } from './harness.js';
import type { Harness } from './harness.js';

const principal: Principal = Object.freeze({
  identity: 'agent-oauth',
  tenant: 'acme',
  roles: ['reader'],
  auth_method: 'oauth',
  issuer: 'https://idp.example',
});
const call = { tool: 'echo', params: { text: 'hi' }, session: null };

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe('Gate.callAs', () => {
  it('mints, claims and runs the shared steps; gateway.accepted says how the principal authenticated', async () => {
    h = await startHarness();
    const a = await h.gate.callAs(principal, call);
    expect(a.status).toBe(200);
    expect(a.body).toMatchObject({ outcome: 'executed', decision_id: 'dec-1' });
    const id = a.body.request_id;
    expect(id).toMatch(/^mcp-[0-9a-f-]{36}$/);
    const accepted = h.ledger.events.find((e) => e.type === 'gateway.accepted');
    expect(accepted).toMatchObject({ request_id: id, identity: 'agent-oauth', tenant: 'acme' });
    expect(accepted?.payload).toMatchObject({
      auth_method: 'oauth',
      issuer: 'https://idp.example',
      tool: 'echo',
    });
    // The evidence is the minted call, with the roles the token gave and no token.
    const evidence = h.ledger.evidence.get(accepted?.payload['request_sha256'] as string);
    expect(JSON.parse(evidence!.toString('utf8'))).toMatchObject({
      format: 'failclosed.mcp-call/v1',
      request_id: id,
      roles: ['reader'],
      parameters: { text: 'hi' },
    });
    expect(h.cpCalls[0]).toMatchObject({ identity: 'agent-oauth', roles: ['reader'], tool: 'echo' });
    expect(h.ledger.events.map((e) => e.type)).toEqual(['gateway.accepted', 'gateway.completed']);
  });

  it('two calls get two request ids and nonces (never a replay of each other)', async () => {
    h = await startHarness();
    const a = await h.gate.callAs(principal, call);
    const b = await h.gate.callAs(principal, call);
    expect(a.body.outcome).toBe('executed');
    expect(b.body.outcome).toBe('executed');
    expect(a.body.request_id).not.toBe(b.body.request_id);
  });

  it('a replay store that fails denies ERR_NONCE_STORE_UNAVAILABLE, recorded, nothing decided or run', async () => {
    h = await startHarness({
      extra: {
        replay: {
          claim: () => Promise.reject(new Error('disk gone')),
        },
      },
    });
    const a = await h.gate.callAs(principal, call);
    expect(a.body).toMatchObject({ outcome: 'deny', code: 'ERR_NONCE_STORE_UNAVAILABLE' });
    expect(h.failedCodes()).toEqual(['ERR_NONCE_STORE_UNAVAILABLE']);
    expect(h.ledger.events[0]).toMatchObject({ identity: 'agent-oauth', request_id: a.body.request_id });
    expect(h.cpCalls).toEqual([]);
    expect(h.execCalls).toEqual([]);
  });

  it('a replay store that answers "replayed" for a fresh minted pair is not trusted', async () => {
    h = await startHarness({ extra: { replay: { claim: () => 'replayed' } } });
    const a = await h.gate.callAs(principal, call);
    expect(a.body).toMatchObject({ outcome: 'deny', code: 'ERR_NONCE_STORE_UNAVAILABLE' });
    expect(h.execCalls).toEqual([]);
  });

  it('a secret in the parameters is refused before anything is stored', async () => {
    h = await startHarness({ extra: { secretScanner: () => true } });
    const a = await h.gate.callAs(principal, call);
    expect(a.body).toMatchObject({ outcome: 'deny', code: 'ERR_PARAMS_SECRET' });
    expect(h.ledger.evidence.size).toBe(0);
    expect(h.execCalls).toEqual([]);
  });

  it('a secret in the session is refused before anything is stored (scenario 16, OE-INV-009)', async () => {
    const scanned: unknown[] = [];
    h = await startHarness({
      extra: {
        secretScanner: (v) => {
          scanned.push(v);
          return JSON.stringify(v).includes('AKIA');
        },
      },
    });
    const a = await h.gate.callAs(principal, { ...call, session: 's-AKIAIOSFODNN7EXAMPLE' });
    expect(a.body).toMatchObject({ outcome: 'deny', code: 'ERR_PARAMS_SECRET' });
    expect(scanned[0]).toMatchObject({ parameters: call.params, session: 's-AKIAIOSFODNN7EXAMPLE' });
    expect(h.ledger.evidence.size).toBe(0);
    expect(JSON.stringify(h.ledger.events)).not.toContain('AKIA');
    expect(h.cpCalls).toEqual([]);
    expect(h.execCalls).toEqual([]);
  });

  it('a retry of a request id the Control Plane does not hold as escalated is ERR_REQUEST_REPLAYED; nothing runs', async () => {
    h = await startHarness();
    const first = await h.gate.callAs(principal, call);
    expect(first.body.outcome).toBe('executed');
    const retryOf = first.body.request_id as string;
    const again = await h.gate.callAs(principal, { ...call, retryOf });
    expect(again.body).toMatchObject({ outcome: 'deny', code: 'ERR_REQUEST_REPLAYED', request_id: retryOf });
    expect(h.execCalls).toHaveLength(1);
  });

  it('a "retry" of a request id the Gate never minted is ERR_REQUEST_REPLAYED: a caller never picks a new call\'s id', async () => {
    h = await startHarness();
    const chosen = 'mcp-00000000-0000-0000-0000-000000000001';
    const a = await h.gate.callAs(principal, { ...call, retryOf: chosen });
    expect(a.body).toMatchObject({ outcome: 'deny', code: 'ERR_REQUEST_REPLAYED', request_id: chosen });
    expect(h.failedCodes()).toEqual(['ERR_REQUEST_REPLAYED']);
    expect(h.cpCalls).toEqual([]);
    expect(h.execCalls).toEqual([]);
  });

  it('parameters without a canonical form are refused ERR_REQUEST_MALFORMED, recorded, nothing runs', async () => {
    h = await startHarness();
    const a = await h.gate.callAs(principal, { tool: 'echo', params: { n: 2 ** 60 }, session: null });
    expect(a.body).toMatchObject({ outcome: 'deny', code: 'ERR_REQUEST_MALFORMED' });
    expect(h.failedCodes()).toEqual(['ERR_REQUEST_MALFORMED']);
    expect(h.cpCalls).toEqual([]);
    expect(h.execCalls).toEqual([]);
  });

  it('a Control Plane that throws denies, recorded with the principal, and nothing runs', async () => {
    h = await startHarness({ decide: () => Promise.reject(new Error('boom')) });
    const a = await h.gate.callAs(principal, call);
    expect(a.body.outcome).toBe('deny');
    expect(h.failedCodes()).toHaveLength(1);
    expect(h.execCalls).toEqual([]);
  });

  it('tools/list is empty when the Control Plane cannot say (deny by default)', async () => {
    h = await startHarness();
    expect(await h.gate.toolsFor(principal)).toEqual([]);
    await h.close();
    h = await startHarness({
      extra: {
        controlPlane: {
          decide: () => Promise.reject(new Error('unused')),
          ready: () => Promise.resolve({ ready: true }),
          issuerJwks: () => ({ keys: [], revoked: [] }),
          callableTools: () => new Promise(() => undefined),
        },
      },
    });
    expect(await h.gate.toolsFor(principal)).toEqual([]);
  });
});
