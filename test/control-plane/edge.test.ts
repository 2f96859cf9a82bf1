/**
 * The Control Plane's edge (FC-INV-4, FC-INV-5, STYLE "Errors and denials"): an exception no
 * guard of the decision path catches is a deny `ERR_INTERNAL`, and still a `denial` record
 * carrying the request id. A fault-injecting wrapper around the real bundle store throws where
 * the pipeline reads the active policy directly.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createControlPlane, type BundleStore, type LedgerAppender } from '../../src/control-plane/index.js';
import { AUD, DERIVATION_KEY, entriesOf, ISS, issuerKey, request, rig, type Rig } from './support.js';

const opened: Rig[] = [];
afterEach(async () => {
  for (const r of opened.splice(0)) await r.close();
});

/** The real bundle store, except that reading the active policy throws. */
function throwingActive(inner: BundleStore): BundleStore {
  return {
    ...inner,
    active() {
      throw new Error('bundle store (fault injected)');
    },
  };
}

async function edgeRig(ledger?: (r: Rig) => LedgerAppender) {
  const r = await rig();
  opened.push(r);
  const cp = createControlPlane({
    ledger: ledger === undefined ? r.faulty : ledger(r),
    now: r.clock,
    issuer: { key: issuerKey(), iss: ISS, audience: AUD, envelopeTtlSec: 60 },
    bundles: throwingActive(r.bundles),
    state: r.state,
    derivationKey: DERIVATION_KEY,
    deadlines: { ledgerMs: 200, policyMs: 200, stateMs: 200 },
  });
  return { r, cp };
}

describe("the Control Plane's edge", () => {
  it('a throw inside decide is ERR_INTERNAL and a denial record carrying the request id', async () => {
    const { r, cp } = await edgeRig();
    const before = r.ledger.size();
    const req = request('echo', { message: 'hi' }, { request_id: 'req-cp-edge', trace_id: 'trace-cp-edge' });
    const res = await cp.decide(req);
    expect(res).toMatchObject({ outcome: 'deny', code: 'ERR_INTERNAL', decision_id: null });
    const added = (await entriesOf(r.ledger)).slice(before);
    expect(added.map((e) => e.type)).toEqual(['denial']);
    expect(added[0]).toMatchObject({
      request_id: 'req-cp-edge',
      trace_id: 'trace-cp-edge',
      tenant: 'acme',
      actor: { role: 'control-plane' },
      payload: {
        code: 'ERR_INTERNAL',
        stage: 'control-plane',
        tool: 'echo',
        client: 'agent-1',
        session: 'sess-1',
        request_sha256: req.request_sha256,
      },
    });
  });

  it('the deny stands when that record cannot be written (the ledger throws too)', async () => {
    const { r, cp } = await edgeRig(() => ({
      append: () => {
        throw new Error('ledger (fault injected)');
      },
    }));
    const before = r.ledger.size();
    const res = await cp.decide(request('echo', { message: 'hi' }, { request_id: 'req-cp-edge-2' }));
    expect(res).toMatchObject({ outcome: 'deny', code: 'ERR_INTERNAL', decision_id: null });
    expect(r.ledger.size()).toBe(before);
  });
});
