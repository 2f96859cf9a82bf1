/**
 * The linkage checks of `failclosed verify` on a real deployment's export (SPEC §5): envelope
 * binding (SPEC §3, OE-INV-017), receipts after an allow decision with a single-use nonce
 * (OE-INV-015, FC-INV-4), Gate → Control Plane → Execution Layer traces (FC-INV-6, the FC seed's
 * `verify.sh: INV-6`) and attributable outcomes (FC-INV-5, FC-INV-3). Each tamper is made by a
 * consistent forger (relink.ts: chain, hashes, envelope ledger claims and checkpoint rebuilt,
 * the forger's ledger key pinned), so only the linkage check can catch it, and it names the entry.
 */
import { v1Of } from './v1.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSignedRequest } from '../../src/client/request.js';
import { createClient } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  dataPaths,
  initDataDir,
  readClientFile,
  readOperatorToken,
  readSigningKey,
  startEmbedded,
} from '../../src/embedded/index.js';
import { envelopeSha256, sha256Hex } from '../../src/kernel/index.js';
import { generateSigningKey, importSigningKeyJwk, type SigningKey } from '../../src/kernel/signing/index.js';
import { runVerifyCli, verifyBundle, type FindingCode, type VerifyReport } from '../../src/verify/index.js';
import { mutable, text, type MutableBundle } from './helpers.js';
import { breakSignature, relink, resignEnvelope, swapConsumed } from './relink.js';

const LINKAGE = ['envelope-binding', 'receipt-linkage', 'trace-linkage', 'attributable-outcome'];

let work: string;
let full: string;
let ranged: string;
let traced: string;
/** The deployment's trust file (`GET /v1/trust-roots`), pinned by every unforged verification here. */
let trust: string;
let issuer: SigningKey;
let clientKey: SigningKey;
/** Trace of the executed `echo` call. */
let echoTrace: string;

async function exportVia(url: string, dir: string, body: object): Promise<string> {
  const res = await fetch(`${url}/v1/admin/ledger-export`, {
    method: 'POST',
    headers: { authorization: `Bearer ${readOperatorToken(dir)}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
  // The route streams v2; these tests tamper with the bundle as one object (v1, same verdict).
  return v1Of(await res.text());
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fc-verify-linkage-'));
  const dir = join(work, 'data');
  await initDataDir(dir);
  issuer = readSigningKey(dataPaths(dir).issuerKey);
  const file = readClientFile(dir, DEMO_CLIENT.identity);
  clientKey = importSigningKeyJwk(file.key);
  const instance = await startEmbedded(dir, { port: 0, executionPort: 0 });
  try {
    const client = createClient({
      url: instance.url,
      identity: file.identity,
      tenant: file.tenant,
      key: file.key,
    });
    const echo = await client.call('echo', { message: 'linkage' }, { session: 'linkage-1' });
    expect(echo).toMatchObject({ outcome: 'executed' });
    echoTrace = (echo as { trace_id: string }).trace_id;
    expect(
      await client.call('send_email', { to: 'a@b.c', subject: 's', body: 'b' }, { session: 'linkage-2' }),
    ).toMatchObject({ outcome: 'executed' });
    const denied = await client.call(
      'transfer_funds',
      { from_account: 'acct_a', to_account: 'acct_b', amount: 99999, currency: 'USD' },
      { session: 'linkage-3' },
    );
    expect(denied).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_DENY' });
    full = await exportVia(instance.url, dir, {});
    trust = await (await fetch(`${instance.url}/v1/trust-roots`)).text();
    const lastAccepted = (mutable(full)['entries'] as MutableBundle[])
      .filter((e) => e['type'] === 'gateway.accepted')
      .at(-1)!;
    // A range that ends on a request's acceptance cuts that request's outcome off.
    ranged = await exportVia(instance.url, dir, { from: 0, to: lastAccepted['index'] });
    traced = await exportVia(instance.url, dir, { trace_id: echoTrace });
  } finally {
    await instance.close();
  }
}, 60_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

const statusOf = (r: VerifyReport, id: string): string | undefined =>
  r.checks.find((c) => c.id === id)?.status;
const findingsOf = (r: VerifyReport, id: string) => r.checks.find((c) => c.id === id)?.findings ?? [];
const failing = (r: VerifyReport): string[] => r.checks.filter((c) => c.status === 'fail').map((c) => c.id);

/** Position of the entry of `type` in the echo trace. */
function at(b: MutableBundle, type: string): number {
  const i = (b['entries'] as MutableBundle[]).findIndex(
    (e) => e['trace_id'] === echoTrace && e['type'] === type,
  );
  expect(i).toBeGreaterThanOrEqual(0);
  return i;
}

/** Applies `tamper`, rebuilds the ledger consistently and verifies with the forger's key pinned. */
function forge(tamper: (b: MutableBundle) => void): { report: VerifyReport; bundle: MutableBundle } {
  const b = mutable(full);
  tamper(b);
  const { vkey } = relink(b, issuer);
  return { report: verifyBundle(text(b), { trustedKey: vkey }), bundle: b };
}

function expectOnly(r: VerifyReport, check: string, code: FindingCode, index: number): void {
  expect(r.exitCode).toBe(1);
  expect(findingsOf(r, check)[0]).toMatchObject({ code, index });
  expect(failing(r).filter((id) => !LINKAGE.includes(id))).toEqual([]);
}

describe('a real export passes the linkage checks (SPEC §5)', () => {
  it('every linkage check passes and the bundle carries keys, executor, policies and every record of a call', () => {
    const r = verifyBundle(full, { trust });
    expect(r.exitCode).toBe(0);
    for (const id of LINKAGE) expect(statusOf(r, id)).toBe('pass');
    for (const id of ['FC-INV-3', 'FC-INV-4', 'FC-INV-5', 'FC-INV-6', 'OE-INV-015', 'OE-INV-017'])
      expect(r.requirements[id]).toBe('pass');
    const b = mutable(full);
    expect(b['executor']).toMatchObject({
      audience: expect.any(String) as string,
      max_lifetime_sec: expect.any(Number) as number,
    });
    expect(b['jwks'].issuer.keys).toHaveLength(1);
    expect(Object.values(b['jwks'].client_identities)).toContainEqual({
      identity: DEMO_CLIENT.identity,
      tenant: 'acme',
    });
    const hashes = (b['entries'] as MutableBundle[])
      .filter((e) => e['type'] === 'decision')
      .map((e) => e['payload'].policy_bundle as string);
    expect(hashes.length).toBeGreaterThan(0);
    for (const h of hashes) expect(Object.keys(b['policy_bundles'])).toContain(h);
    // v2 carries no request index (docs/ledger.md): the echo call's records are all in the bundle.
    for (const type of ['gateway.accepted', 'envelope.issued', 'execution.receipt', 'gateway.completed'])
      expect(typeof at(b, type)).toBe('number');
  });

  it('the consistent forger alone changes nothing the linkage checks see', () => {
    const { report } = forge(() => undefined);
    expect(report.exitCode).toBe(0);
    expect(report.keyPinned).toBe(true);
  });

  it('--invariant FC-INV-6 (alias INV-6, verify.sh: INV-6) runs the trace linkage, interface inventory and schedule checks', async () => {
    for (const invariant of ['FC-INV-6', 'INV-6']) {
      const r = verifyBundle(full, { invariant, trust });
      expect(r.checks.map((c) => c.id)).toEqual(['trace-linkage', 'interface-inventory', 'schedules']);
      expect(r.exitCode).toBe(0);
    }
    const out: string[] = [];
    const io = {
      out: (t: string) => void out.push(t),
      err: () => undefined,
      readFile: (p: string) => Buffer.from(p === 'trust.json' ? trust : full),
    };
    expect(
      await runVerifyCli(['bundle.json', '--invariant', 'INV-6', '--json', '--trust', 'trust.json'], io),
    ).toBe(0);
    expect((JSON.parse(out.join('')) as VerifyReport).requirements).toEqual({ 'FC-INV-6': 'pass' });
  });

  it('a trace export holds its whole trace; a range export that cuts a request leaves it undecided, not failed', () => {
    const t = verifyBundle(traced, { trust });
    expect(t.exitCode).toBe(0);
    // The client's ledgered registration (written at init) lies outside the trace: with pinned roots
    // its request signature is undecided (FC-INV-3), never passed on the bundle's unsigned client JWKS.
    expect(statusOf(t, 'attributable-outcome')).toBe('pass');
    const accepted = (mutable(traced)['entries'] as MutableBundle[]).find(
      (e) => e['type'] === 'gateway.accepted',
    );
    expect(t.checks.find((c) => c.id === 'attributable-outcome')?.undecided).toEqual([
      expect.objectContaining({ code: 'REQUEST_SIGNATURE', partial: true, index: accepted?.['index'] }),
    ]);
    expect(
      t.checks.filter((c) => c.id !== 'attributable-outcome').every((c) => c.undecided === undefined),
    ).toBe(true);
    expect(t.notes.join('\n')).toContain('were not decided');
    const r = verifyBundle(ranged, { trust });
    expect(r.exitCode).toBe(0);
    expect(statusOf(r, 'attributable-outcome')).toBe('pass');
    expect(r.checks.find((c) => c.id === 'attributable-outcome')?.undecided?.[0]).toMatchObject({
      code: 'OUTCOME_MISSING',
      partial: true,
    });
  });
});

describe('tampering with the linkage is caught and names the entry', () => {
  it('an envelope whose signature is broken', () => {
    const { report, bundle } = forge((b) => {
      const r = at(b, 'execution.receipt');
      swapConsumed(b, r, breakSignature(b['entries'][r].payload.envelope as string));
    });
    expectOnly(report, 'envelope-binding', 'ENVELOPE_SIGNATURE', at(bundle, 'envelope.issued'));
  });

  it('an envelope re-signed by a key the bundle does not publish', () => {
    const { report, bundle } = forge((b) => {
      const r = at(b, 'execution.receipt');
      const stranger = generateSigningKey();
      swapConsumed(b, r, resignEnvelope(b['entries'][r].payload.envelope as string, stranger));
      b['entries'][at(b, 'envelope.issued')].payload.kid = stranger.kid;
    });
    expectOnly(report, 'envelope-binding', 'ENVELOPE_KEY', at(bundle, 'envelope.issued'));
  });

  it('no envelope.issued record holds a JWS: claims and a digest only (issue 8 Why 1)', () => {
    const b = mutable(full);
    const issued = (b['entries'] as MutableBundle[]).filter((e) => e['type'] === 'envelope.issued');
    expect(issued.length).toBeGreaterThan(0);
    for (const e of issued) {
      expect(e['payload']).not.toHaveProperty('envelope');
      expect(e['payload']['envelope_sha256']).toMatch(/^[0-9a-f]{64}$/);
    }
    expect(at(b, 'execution.receipt')).toBeGreaterThan(0);
    expect(b['entries'][at(b, 'execution.receipt')].payload.envelope).toEqual(expect.any(String));
  });

  it('a receipt whose consumed envelope is not the one whose digest was recorded at issuance', () => {
    const { report, bundle } = forge((b) => {
      const r = b['entries'][at(b, 'execution.receipt')];
      // Another envelope, well signed by the real issuer; the receipt's own digest follows it.
      r.payload.envelope = resignEnvelope(r.payload.envelope as string, issuer, (c) => {
        c['exp'] = (c['exp'] as number) + 1;
      });
      r.payload.envelope_sha256 = envelopeSha256(r.payload.envelope as string);
    });
    expect(report.exitCode).toBe(1);
    expect(findingsOf(report, 'receipt-linkage')[0]).toMatchObject({
      code: 'RECEIPT_BINDING',
      index: at(bundle, 'execution.receipt'),
    });
    expect(findingsOf(report, 'envelope-binding')[0]).toMatchObject({
      code: 'ENVELOPE_BINDING',
      index: at(bundle, 'envelope.issued'),
    });
  });

  it('an execution after its envelope was voided', () => {
    const { report, bundle } = forge((b) => {
      const r = at(b, 'execution.receipt');
      const receipt = b['entries'][r];
      const voided = structuredClone(receipt);
      voided.type = 'envelope.voided';
      voided.actor = { id: receipt.actor.id, role: 'executor' };
      voided.payload = {
        decision_id: receipt.payload.decision_id,
        jti: receipt.payload.jti,
        envelope_sha256: receipt.payload.envelope_sha256,
        code: 'ERR_EXECUTION_UNAVAILABLE',
        stage: 'execution',
        reason: 'the call failed after issuance',
        nonce_voided: true,
      };
      b['entries'].splice(r, 0, voided);
    });
    expectOnly(report, 'receipt-linkage', 'NONCE_REUSED', at(bundle, 'execution.receipt'));
  });

  it('a receipt whose nonce (jti) repeats: a second execution of one envelope', () => {
    const { report, bundle } = forge((b) => {
      const i = at(b, 'execution.receipt');
      b['entries'].splice(i + 1, 0, structuredClone(b['entries'][i]));
    });
    expectOnly(report, 'receipt-linkage', 'NONCE_REUSED', at(bundle, 'execution.receipt') + 1);
  });

  it('a receipt with no prior decision (the decision record removed)', () => {
    const { report, bundle } = forge((b) => void b['entries'].splice(at(b, 'decision'), 1));
    expectOnly(report, 'receipt-linkage', 'RECEIPT_NO_DECISION', at(bundle, 'execution.receipt'));
    expect(findingsOf(report, 'envelope-binding')[0]).toMatchObject({
      code: 'ENVELOPE_LEDGER',
      index: at(bundle, 'envelope.issued'),
    });
  });

  it('an execution trace without its Gate record (gateway.accepted removed): FC-INV-6', () => {
    const { report, bundle } = forge((b) => void b['entries'].splice(at(b, 'gateway.accepted'), 1));
    expectOnly(report, 'trace-linkage', 'TRACE_GATE_MISSING', at(bundle, 'execution.receipt'));
    const vkey = relink(bundle, issuer).vkey;
    const only = verifyBundle(text(bundle), { invariant: 'INV-6', trustedKey: vkey });
    expect(only.exitCode).toBe(1);
    expect(only.firstViolation).toMatchObject({ check: 'trace-linkage', code: 'TRACE_GATE_MISSING' });
  });

  it('a request without an outcome (gateway.completed removed): FC-INV-5', () => {
    const { report, bundle } = forge((b) => void b['entries'].splice(at(b, 'gateway.completed'), 1));
    expectOnly(report, 'attributable-outcome', 'OUTCOME_MISSING', at(bundle, 'gateway.accepted'));
    expect(findingsOf(report, 'trace-linkage')[0]).toMatchObject({
      code: 'TRACE_COMPLETION_MISSING',
      index: at(bundle, 'execution.receipt'),
    });
  });

  it('signed request evidence whose parameters do not hash to params_sha256', () => {
    const { report, bundle } = forge((b) => {
      const accepted = b['entries'][at(b, 'gateway.accepted')];
      const original = JSON.parse(
        Buffer.from(b['evidence'][accepted.payload.request_sha256].body_b64 as string, 'base64').toString(),
      ) as MutableBundle;
      const other = buildSignedRequest({
        key: clientKey,
        identity: original['identity'],
        tenant: original['tenant'],
        action: original['action'],
        parameters: { message: 'something else' },
        timestampMs: Date.parse(original['timestamp'] as string),
        requestId: original['request_id'],
        nonce: original['nonce'],
        session: original['session'],
      });
      const raw = Buffer.from(JSON.stringify(other));
      const sha = sha256Hex(raw);
      b['evidence'][sha] = { media_type: 'application/json', body_b64: raw.toString('base64') };
      accepted.payload.request_sha256 = sha;
      b['entries'][at(b, 'decision')].payload.request_sha256 = sha;
    });
    expect(report.exitCode).toBe(1);
    expect(findingsOf(report, 'envelope-binding')[0]).toMatchObject({
      code: 'ENVELOPE_PARAMS',
      index: at(bundle, 'envelope.issued'),
    });
  });

  it('a request signed by no registered client key (FC-INV-3)', () => {
    const { report, bundle } = forge((b) => {
      b['jwks'].clients = { keys: [], revoked: [] };
      b['jwks'].client_identities = {};
      b['entries'] = (b['entries'] as MutableBundle[]).filter((e) => e['type'] !== 'admin.client_registered');
    });
    expectOnly(
      report,
      'attributable-outcome',
      'REQUEST_SIGNATURE',
      (bundle['entries'] as MutableBundle[]).findIndex((e) => e['type'] === 'gateway.accepted'),
    );
  });
});

describe('request.abandoned is the outcome of a request a crash or stop left open (SPEC §5, FC-INV-5)', () => {
  /** The executed call's gateway.completed replaced by what recovery writes after a kill -9. */
  const abandon =
    (consumed: boolean) =>
    (b: MutableBundle): void => {
      const e = (b['entries'] as MutableBundle[])[at(b, 'gateway.completed')] as MutableBundle;
      e['type'] = 'request.abandoned';
      e['payload'] = {
        code: 'ERR_ABANDONED',
        status: 'executed',
        outcome: 'abandoned',
        envelope_consumed: consumed,
        tool: 'echo',
        reason: 'the process stopped before the call had an outcome',
      };
    };

  it('an executed call closed by request.abandoned (envelope consumed) passes, and the report counts it as may have run', () => {
    const { report } = forge(abandon(true));
    expect(report.exitCode).toBe(0);
    expect(statusOf(report, 'attributable-outcome')).toBe('pass');
    expect(statusOf(report, 'trace-linkage')).toBe('pass');
    expect(report.notes).toContain(
      '1 request(s) abandoned by a crash or stop (request.abandoned), 1 of them may have run (envelope consumed)',
    );
  });

  it('request.abandoned saying the envelope was never consumed while a receipt shows it ran: OUTCOME_MALFORMED', () => {
    const { report, bundle } = forge(abandon(false));
    expectOnly(report, 'attributable-outcome', 'OUTCOME_MALFORMED', at(bundle, 'request.abandoned'));
  });
});
