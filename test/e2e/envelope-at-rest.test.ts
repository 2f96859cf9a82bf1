/**
 * Issue 8 Why 1 and Why 2, end to end over real HTTP, SQLite and sandbox:
 * - an envelope is never a bearer token at rest: after a call that failed after issuance, the
 *   JWS is nowhere an attacker could look (ledger, evidence view, export, any file of the data
 *   directory); captured in flight by a fault-injecting wrapper, it is voided before the Gate
 *   answered, and presented later it is refused with ERR_ENVELOPE_VOIDED: the tool never ran;
 * - the Execution Layer reads the decision it is shown (L7 Boundary B): envelopes well signed
 *   with the real issuer key for a ledgered deny decision, for the allow decision of another
 *   call, or never issued, are refused with their own codes and the tool never ran.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOperatorToken } from '../../src/embedded/index.js';
import { computeParamsSha256, type EnvelopeClaims } from '../../src/kernel/index.js';
import { signEnvelope } from '../../src/kernel/signing/index.js';
import type { E2e } from './harness.js';
import { expectDenied, session, startE2e } from './harness.js';
import { partsOf } from './forge.js';

let e2e: E2e;

beforeAll(async () => {
  // A short Gate deadline for the Execution Layer, so the "executor timeout" case is quick.
  e2e = await startE2e({ embedded: { deadlines: { gate: { executionMs: 400 } } } });
});

afterAll(async () => {
  await e2e?.close();
});

/** Every place an attacker with the operator token or the host's files could look for `jws`. */
async function findAtRest(jws: string, requestId: string): Promise<string[]> {
  const found: string[] = [];
  const view = await e2e.evidence(requestId);
  if (JSON.stringify(view.body).includes(jws)) found.push('evidence view');
  const exported = await fetch(`${e2e.instance.url}/v1/admin/ledger-export`, {
    method: 'POST',
    headers: { authorization: `Bearer ${readOperatorToken(e2e.dir)}`, 'content-type': 'application/json' },
    body: '{}',
  });
  if ((await exported.text()).includes(jws)) found.push('export');
  const store = e2e.instance.core.ledger.store;
  const entries = await store.readRange(0, e2e.instance.core.ledger.size());
  if (JSON.stringify(entries).includes(jws)) found.push('ledger');
  const walk = (dir: string): void => {
    for (const d of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, d.name);
      if (d.isDirectory()) walk(path);
      else if (readFileSync(path).includes(Buffer.from(jws, 'latin1'))) found.push(path);
    }
  };
  walk(e2e.dir);
  return found;
}

const typesOf = async (requestId: string): Promise<string[]> =>
  ((await e2e.evidence(requestId)).body['records'] as { entry: { type: string } }[]).map((r) => r.entry.type);

describe('issue 8 Why 1: a call denied after issuance never runs later', () => {
  it('nonce store fault during execution → 503, the envelope is voided before the answer and refused later', async () => {
    const params = { message: 'why 1: nonce store' };
    const seen = e2e.port.captured.length;
    // The fault holds while the Execution Layer consumes; it is gone by the time the Gate voids.
    e2e.port.around = async (run) => {
      e2e.faults.nonceStore = 'throw';
      try {
        return await run();
      } finally {
        e2e.faults.nonceStore = 'off';
      }
    };
    let r;
    try {
      r = await expectDenied(e2e, 'ERR_NONCE_STORE_UNAVAILABLE', () =>
        e2e.client().call('echo', params, { session: session() }),
      );
    } finally {
      e2e.port.around = undefined;
    }
    expect(r).toMatchObject({ status: 503, envelope_voided: true });
    const envelope = e2e.port.captured[seen] ?? '';
    const requestId = r.request_id ?? '';
    expect(await findAtRest(envelope, requestId)).toEqual([]);
    expect(await typesOf(requestId)).toContain('envelope.voided');
    await expectDenied(e2e, 'ERR_ENVELOPE_VOIDED', () =>
      e2e.execute({ envelope, tool: 'echo', tenant: 'acme', params }),
    );
  });

  it('the Execution Layer does not answer in time → 503, voided first, refused later', async () => {
    const params = { message: 'why 1: timeout' };
    const seen = e2e.port.captured.length;
    e2e.port.mode = 'hang';
    let r;
    try {
      r = await expectDenied(e2e, 'ERR_EXECUTION_UNAVAILABLE', () =>
        e2e.client().call('echo', params, { session: session() }),
      );
    } finally {
      e2e.port.mode = 'pass';
    }
    expect(r).toMatchObject({ status: 503, envelope_voided: true });
    const envelope = e2e.port.captured[seen] ?? '';
    expect(await findAtRest(envelope, r.request_id ?? '')).toEqual([]);
    await expectDenied(e2e, 'ERR_ENVELOPE_VOIDED', () =>
      e2e.execute({ envelope, tool: 'echo', tenant: 'acme', params }),
    );
  });

  it('voiding that cannot be confirmed is said in the answer and ledgered; the JWS is still nowhere at rest', async () => {
    const params = { message: 'why 1: no void' };
    const seen = e2e.port.captured.length;
    e2e.faults.nonceStore = 'throw';
    let r;
    try {
      r = await expectDenied(e2e, 'ERR_NONCE_STORE_UNAVAILABLE', () =>
        e2e.client().call('echo', params, { session: session() }),
      );
    } finally {
      e2e.faults.nonceStore = 'off';
    }
    expect(r).toMatchObject({ status: 503, envelope_voided: false });
    const requestId = r.request_id ?? '';
    const records = (await e2e.evidence(requestId)).body['records'] as {
      entry: { type: string; payload: Record<string, unknown> };
    }[];
    expect(records.find((x) => x.entry.type === 'envelope.voided')?.entry.payload).toMatchObject({
      nonce_voided: false,
    });
    expect(await findAtRest(e2e.port.captured[seen] ?? '', requestId)).toEqual([]);
  });

  it('an executed call records its consumed JWS with the receipt, and only there', async () => {
    const r = await e2e.client().call('echo', { message: 'why 1: ran' }, { session: session() });
    expect(r.outcome).toBe('executed');
    const jws = await e2e.envelopeOf(r.request_id ?? '');
    const records = (await e2e.evidence(r.request_id ?? '')).body['records'] as {
      entry: { type: string };
    }[];
    const holding = records.filter((x) => JSON.stringify(x.entry).includes(jws)).map((x) => x.entry.type);
    expect(holding).toEqual(['execution.receipt']);
  });
});

describe('issue 8 Why 2: the Execution Layer reads the decision it is shown (L7 Boundary B)', () => {
  let template: EnvelopeClaims;

  beforeAll(async () => {
    const { envelope } = await e2e.unusedEnvelope('echo', { message: 'template' });
    template = JSON.parse(partsOf(envelope).payload) as EnvelopeClaims;
  });

  /** The `decision` record of a request, read from the evidence view. */
  async function decisionOf(requestId: string) {
    const records = (await e2e.evidence(requestId)).body['records'] as {
      entry: {
        type: string;
        index: number;
        entry_hash: string;
        request_id: string;
        trace_id: string;
        payload: Record<string, unknown>;
      };
    }[];
    const d = records.find((x) => x.entry.type === 'decision')?.entry;
    if (d === undefined) throw new Error('no decision');
    return d;
  }

  it('an envelope re-signed with the real issuer key for a ledgered deny decision → ERR_ENVELOPE_DECISION_MISMATCH', async () => {
    const transfer = { from_account: 'acct_a', to_account: 'acct_b', amount: 60000, currency: 'USD' };
    const denied = await expectDenied(e2e, 'ERR_POLICY_DENY', () =>
      e2e.client().call('transfer_funds', transfer, { session: session() }),
    );
    const d = await decisionOf(denied.request_id ?? '');
    expect(d.payload['outcome']).toBe('deny');
    const forged = signEnvelope(
      {
        ...template,
        tool: 'transfer_funds',
        params_sha256: computeParamsSha256(transfer),
        jti: `forged-${Date.now()}`,
        decision_id: String(d.payload['decision_id']),
        request_id: d.request_id,
        trace_id: d.trace_id,
        ledger: { index: d.index, entry_hash: d.entry_hash },
      },
      e2e.issuerKey(),
    );
    await expectDenied(e2e, 'ERR_ENVELOPE_DECISION_MISMATCH', () =>
      e2e.execute({ envelope: forged, tool: 'transfer_funds', tenant: 'acme', params: transfer }),
    );
  });

  it('an envelope pointing at the allow decision of another tool and parameters → ERR_ENVELOPE_DECISION_MISMATCH', async () => {
    const allowed = await e2e.client().call('echo', { message: 'allowed' }, { session: session() });
    expect(allowed.outcome).toBe('executed');
    const d = await decisionOf(allowed.request_id ?? '');
    expect(d.payload['outcome']).toBe('allow');
    const transfer = { from_account: 'acct_a', to_account: 'acct_x', amount: 40, currency: 'USD' };
    const forged = signEnvelope(
      {
        ...template,
        tool: 'transfer_funds',
        params_sha256: computeParamsSha256(transfer),
        jti: `forged-other-${Date.now()}`,
        decision_id: String(d.payload['decision_id']),
        request_id: d.request_id,
        trace_id: d.trace_id,
        ledger: { index: d.index, entry_hash: d.entry_hash },
      },
      e2e.issuerKey(),
    );
    await expectDenied(e2e, 'ERR_ENVELOPE_DECISION_MISMATCH', () =>
      e2e.execute({ envelope: forged, tool: 'transfer_funds', tenant: 'acme', params: transfer }),
    );
  });

  it('an envelope for a real allow decision whose issuance was never recorded → ERR_ENVELOPE_NOT_ISSUED', async () => {
    // The genuine claims with a fresh nonce: well signed, right decision, never issued.
    const forged = signEnvelope({ ...template, jti: `never-issued-${Date.now()}` }, e2e.issuerKey());
    await expectDenied(e2e, 'ERR_ENVELOPE_NOT_ISSUED', () =>
      e2e.execute({ envelope: forged, tool: 'echo', tenant: 'acme', params: { message: 'template' } }),
    );
  });
});
