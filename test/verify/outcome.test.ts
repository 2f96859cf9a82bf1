/**
 * The offline attributable-outcome check, one finding at a time (FC-INV-5 "emits attributable
 * audit records for every request", FC-INV-3 signed requests, SPEC §5 "every request has an
 * attributable outcome"). Each tamper is made by the consistent forger (forge.ts); each test
 * asserts the finding code and the entry it names.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { canonicalize, sha256Hex, type JsonValue } from '../../src/kernel/index.js';
import { buildSignedRequest } from '../../src/client/request.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';
import { at, codesOf, entryAt, expectFinding, findingsOf, forge, reissue } from './forge.js';
import { makeBundle, type MutableBundle } from './helpers.js';
import { CLIENT_KEY, requestOf } from './realistic.js';

const CHECK = 'attributable-outcome';
let base: string;

beforeAll(async () => {
  base = (await makeBundle(11)).text;
});

/** Stores `request` as evidence and points trace 0's Gate record and decision at it. */
function swapRequest(b: MutableBundle, request: object): void {
  const raw = Buffer.from(JSON.stringify(request));
  const sha = sha256Hex(raw);
  b['evidence'][sha] = { media_type: 'application/json', body_b64: raw.toString('base64') };
  entryAt(b, 'gateway.accepted')['payload']['request_sha256'] = sha;
  entryAt(b, 'decision')['payload']['request_sha256'] = sha;
}

describe('FC-INV-5: every outcome record names its result or its denial code', () => {
  it.each([
    ['no outcome', (p: MutableBundle) => void delete p['outcome']],
    ['an empty outcome', (p: MutableBundle) => void (p['outcome'] = '')],
    ['no result digest', (p: MutableBundle) => void (p['result_sha256'] = 'nope')],
  ])('a gateway.completed with %s: OUTCOME_MALFORMED', (_n, edit) => {
    const { report, bundle } = forge(base, (b) => edit(entryAt(b, 'gateway.completed')['payload']));
    expectFinding(report, CHECK, 'OUTCOME_MALFORMED', [at(bundle, 'gateway.completed')]);
  });

  it.each([
    ['no code', undefined],
    ['an empty code', ''],
  ])('a gateway.failed with %s: OUTCOME_MALFORMED', (_n, code) => {
    const { report, bundle } = forge(base, (b) => {
      const c = entryAt(b, 'gateway.completed');
      c['type'] = 'gateway.failed';
      c['payload'] = {
        decision_id: 'd-0',
        outcome: 'failed',
        tool: 'echo',
        ...(code === undefined ? {} : { code }),
      };
    });
    expectFinding(report, CHECK, 'OUTCOME_MALFORMED', [at(bundle, 'gateway.failed')]);
  });

  it.each([
    ['another outcome', { outcome: 'executed', envelope_consumed: true }],
    ['no envelope_consumed', { outcome: 'abandoned' }],
  ])('a request.abandoned with %s: OUTCOME_MALFORMED', (_n, fields) => {
    const { report, bundle } = forge(base, (b) => {
      const c = entryAt(b, 'gateway.completed');
      c['type'] = 'request.abandoned';
      c['payload'] = { code: 'ERR_ABANDONED', status: 'executed', tool: 'echo', ...fields };
    });
    expect(findingsOf(report, CHECK)).toEqual([
      expect.objectContaining({ code: 'OUTCOME_MALFORMED', index: at(bundle, 'request.abandoned') }),
    ]);
  });

  it('an outcome recorded by another role than the Gate does not close the request: OUTCOME_MISSING', () => {
    const { report, bundle } = forge(
      base,
      (b) => void (entryAt(b, 'gateway.completed')['actor']['role'] = 'executor'),
    );
    expect(codesOf(report, CHECK)).toEqual(['OUTCOME_MISSING']);
    expect(findingsOf(report, CHECK)[0]?.index).toBe(at(bundle, 'gateway.accepted'));
  });
});

describe('FC-INV-3: the raw signed request behind every Gate record is in the bundle, matches it and verifies', () => {
  it('a request authenticated otherwise than by a signature: REQUEST_SIGNATURE', () => {
    const { report, bundle } = forge(
      base,
      (b) => void (entryAt(b, 'gateway.accepted')['payload']['auth_method'] = 'oidc'),
    );
    expectFinding(report, CHECK, 'REQUEST_SIGNATURE', [at(bundle, 'gateway.accepted')]);
  });

  it('evidence that is not a signed request: REQUEST_EVIDENCE', () => {
    const { report, bundle } = forge(base, (b) => swapRequest(b, { not: 'a request' }));
    expect(findingsOf(report, CHECK)).toEqual([
      expect.objectContaining({ code: 'REQUEST_EVIDENCE', index: at(bundle, 'gateway.accepted') }),
    ]);
  });

  it.each([
    ['request id', { requestId: 'r-9' }],
    ['tenant', { tenant: 'globex' }],
    ['identity', { identity: 'agent-2' }],
    ['tool', { action: 'send_email' }],
    ['trace (another nonce)', { nonce: Buffer.alloc(16, 200).toString('base64url') }],
  ])('a signed request for another %s than its Gate record: REQUEST_EVIDENCE', (_n, change) => {
    const r = requestOf(0);
    const other = buildSignedRequest({
      key: CLIENT_KEY,
      identity: r.identity,
      tenant: r.tenant,
      action: r.action,
      parameters: r.parameters,
      timestampMs: Date.parse(r.timestamp),
      requestId: r.request_id,
      nonce: r.nonce,
      ...change,
    });
    const { report, bundle } = forge(base, (b) => swapRequest(b, other));
    expect(findingsOf(report, CHECK)).toContainEqual(
      expect.objectContaining({ code: 'REQUEST_EVIDENCE', index: at(bundle, 'gateway.accepted') }),
    );
  });

  it('a Gate record naming another client than the signed request: REQUEST_EVIDENCE; one naming none is allowed', () => {
    const other = forge(base, (b) => void (entryAt(b, 'gateway.accepted')['payload']['client'] = 'agent-2'));
    expect(findingsOf(other.report, CHECK)).toEqual([
      expect.objectContaining({ code: 'REQUEST_EVIDENCE', index: at(other.bundle, 'gateway.accepted') }),
    ]);
    const none = forge(base, (b) => {
      delete entryAt(b, 'gateway.accepted')['payload']['client'];
      delete entryAt(b, 'gateway.accepted')['payload']['tool'];
    });
    expect(findingsOf(none.report, CHECK)).toEqual([]);
  });

  it('a request signed by a key not registered to its client: REQUEST_SIGNATURE', () => {
    const r = requestOf(0);
    const forged = buildSignedRequest({
      key: generateSigningKey(),
      identity: r.identity,
      tenant: r.tenant,
      action: r.action,
      parameters: r.parameters,
      timestampMs: Date.parse(r.timestamp),
      requestId: r.request_id,
      nonce: r.nonce,
    });
    // The Gate derives the trace id from the signed request: the whole call moves to the new trace.
    const trace = sha256Hex(canonicalize(forged as unknown as JsonValue)).slice(0, 32);
    const { report, bundle } = forge(base, (b) => {
      swapRequest(b, forged);
      reissue(b, 0, (c) => void (c['trace_id'] = trace));
      for (const e of b['entries'] as MutableBundle[]) if (e['request_id'] === 'r-0') e['trace_id'] = trace;
    });
    const accepted = (bundle['entries'] as MutableBundle[]).findIndex(
      (e) => e['type'] === 'gateway.accepted' && e['request_id'] === 'r-0',
    );
    expectFinding(report, CHECK, 'REQUEST_SIGNATURE', [accepted]);
  });

  it('a client registered for another tenant: REQUEST_SIGNATURE', () => {
    const { report, bundle } = forge(base, (b) => {
      const reg = (b['entries'] as MutableBundle[]).find((e) => e['type'] === 'admin.client_registered')!;
      reg['tenant'] = 'globex';
    });
    expect(findingsOf(report, CHECK)).toContainEqual(
      expect.objectContaining({ code: 'REQUEST_SIGNATURE', index: at(bundle, 'gateway.accepted') }),
    );
  });
});
