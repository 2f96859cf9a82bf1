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
import { verifyBundle } from '../../src/verify/index.js';
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
import { CLIENT_KEY, ISSUER_KEY, requestOf } from './realistic.js';
import { relink } from './relink.js';

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

describe('FC-INV-5: an abandoned request that says nothing ran has no receipt', () => {
  /** Turns trace 0's gateway.completed into a request.abandoned saying whether the envelope was consumed. */
  const abandon = (b: MutableBundle, consumed: boolean): void => {
    const c = entryAt(b, 'gateway.completed');
    c['type'] = 'request.abandoned';
    c['payload'] = { code: 'ERR_ABANDONED', outcome: 'abandoned', tool: 'echo', envelope_consumed: consumed };
  };

  it('envelope_consumed false with a receipt of the same request in its trace: OUTCOME_MALFORMED', () => {
    const { report, bundle } = forge(base, (b) => abandon(b, false));
    expect(findingsOf(report, CHECK)).toEqual([
      expect.objectContaining({ code: 'OUTCOME_MALFORMED', index: at(bundle, 'request.abandoned') }),
    ]);
  });

  it('only request.abandoned is held to envelope_consumed: a gateway.completed saying false beside its receipt: no finding', () => {
    const { report } = forge(
      base,
      (b) => void (entryAt(b, 'gateway.completed')['payload']['envelope_consumed'] = false),
    );
    expect(findingsOf(report, CHECK)).toEqual([]);
  });

  it('envelope_consumed true with a receipt: no finding', () => {
    const { report } = forge(base, (b) => abandon(b, true));
    expect(findingsOf(report, CHECK)).toEqual([]);
  });

  it('envelope_consumed false and no receipt of that request (none, or another request): no finding', () => {
    const none = forge(base, (b) => {
      abandon(b, false);
      drop(b, 'execution.receipt');
    });
    expect(findingsOf(none.report, CHECK)).toEqual([]);
    const other = forge(base, (b) => {
      abandon(b, false);
      entryAt(b, 'execution.receipt')['request_id'] = 'r-other';
    });
    expect(findingsOf(other.report, CHECK)).toEqual([]);
  });
});

describe('SPEC §5: every accepted request has a later Gate outcome record of its own request', () => {
  it('an outcome recorded before the Gate accepted the request does not close it: OUTCOME_MISSING', () => {
    const { report, bundle } = forge(base, (b) => {
      const entries = entriesOf(b);
      const [done] = entries.splice(at(b, 'gateway.completed'), 1);
      entries.splice(at(b, 'gateway.accepted'), 0, done!);
    });
    expect(findingsOf(report, CHECK)).toEqual([
      expect.objectContaining({ code: 'OUTCOME_MISSING', index: at(bundle, 'gateway.accepted') }),
    ]);
  });

  it('an outcome of another request in the same trace does not close it: OUTCOME_MISSING', () => {
    const { report, bundle } = forge(
      base,
      (b) => void (entryAt(b, 'gateway.completed')['request_id'] = 'r-other'),
    );
    expect(findingsOf(report, CHECK)).toEqual([
      expect.objectContaining({ code: 'OUTCOME_MISSING', index: at(bundle, 'gateway.accepted') }),
    ]);
  });

  it('a range export that ends before the outcome leaves OUTCOME_MISSING undecided, not failed', async () => {
    const cut = await makeBundle(11, { scope: { to: 4 } });
    const report = verifyBundle(cut.text, { trustedKey: cut.vkey });
    expect(findingsOf(report, CHECK)).toEqual([]);
    expect(undecidedOf(report, CHECK).map((f) => f.code)).toEqual(['OUTCOME_MISSING']);
  });
});

describe('FC-INV-3: request evidence and the client key that signs it', () => {
  it('a Gate record that names no auth method is checked as signed: no finding', () => {
    const { report } = forge(
      base,
      (b) => void delete entryAt(b, 'gateway.accepted')['payload']['auth_method'],
    );
    expect(findingsOf(report, CHECK)).toEqual([]);
  });

  it('a raw request missing from the evidence: REQUEST_EVIDENCE', () => {
    const { report, bundle } = forge(base, (b) => {
      delete b['evidence'][entryAt(b, 'gateway.accepted')['payload']['request_sha256']];
    });
    expect(findingsOf(report, CHECK)).toContainEqual(
      expect.objectContaining({ code: 'REQUEST_EVIDENCE', index: at(bundle, 'gateway.accepted') }),
    );
  });

  it('a client with two registered keys: the request verifies under either (no finding)', () => {
    const { report } = forge(base, (b) => {
      const reg = structuredClone(entriesOf(b).find((e) => e['type'] === 'admin.client_registered')!);
      const other = generateSigningKey();
      reg['payload'] = { ...reg['payload'], kid: other.kid, public_jwk: { ...other.publicJwk } };
      reg['trace_id'] = reg['request_id'] = `reg-${other.kid}`;
      entriesOf(b).splice(0, 0, reg);
    });
    expect(findingsOf(report, CHECK)).toEqual([]);
  });

  it('with a pinned ledger key and no ledgered registration of the client: REQUEST_SIGNATURE per request', () => {
    const { report, bundle } = forge(base, (b) => {
      entriesOf(b).find((e) => e['type'] === 'admin.client_registered')!['payload']['client'] = 'agent-9';
    });
    expect(findingsOf(report, CHECK).map((f) => ({ code: f.code, index: f.index }))).toEqual([
      { code: 'REQUEST_SIGNATURE', index: at(bundle, 'gateway.accepted', 0) },
      { code: 'REQUEST_SIGNATURE', index: at(bundle, 'gateway.accepted', 1) },
    ]);
  });

  it('a range export that starts after the registration leaves REQUEST_SIGNATURE undecided; a real violation there still fails', async () => {
    const cut = await makeBundle(11, { scope: { from: 1 } });
    const report = verifyBundle(cut.text, { trustedKey: cut.vkey });
    expect(findingsOf(report, CHECK)).toEqual([]);
    expect(undecidedOf(report, CHECK).map((f) => f.code)).toEqual(['REQUEST_SIGNATURE', 'REQUEST_SIGNATURE']);
    const b = mutable(cut.text);
    entryAt(b, 'gateway.accepted')['payload']['auth_method'] = 'oidc';
    const tampered = verifyBundle(text(b), { trustedKey: cut.vkey });
    expect(findingsOf(tampered, CHECK)).toEqual([
      expect.objectContaining({ code: 'REQUEST_SIGNATURE', index: entryAt(b, 'gateway.accepted')['index'] }),
    ]);
  });

  it('with --trust-bundle-keys and no key for the client anywhere: REQUEST_SIGNATURE', () => {
    const b = mutable(base);
    entriesOf(b).find((e) => e['type'] === 'admin.client_registered')!['payload']['client'] = 'agent-9';
    b['jwks']['clients'] = { keys: [] };
    const report = verifyBundle(text(b), { trustBundleKeys: true });
    expect(findingsOf(report, CHECK).map((f) => ({ code: f.code, index: f.index }))).toEqual([
      { code: 'REQUEST_SIGNATURE', index: at(b, 'gateway.accepted', 0) },
      { code: 'REQUEST_SIGNATURE', index: at(b, 'gateway.accepted', 1) },
    ]);
  });

  it('a pinned ledger key the checkpoint does not verify under: one REQUEST_SIGNATURE naming no entry', () => {
    const report = verifyBundle(base, { trustedKey: relink(mutable(base), ISSUER_KEY).vkey });
    expect(findingsOf(report, CHECK)).toEqual([expect.objectContaining({ code: 'REQUEST_SIGNATURE' })]);
    expect(findingsOf(report, CHECK)[0]).not.toHaveProperty('index');
  });
});

describe('FC-INV-3: the Gate record itself must match its signed request (request id, tenant, identity, tool)', () => {
  it.each([
    ['request id', (e: MutableBundle) => void (e['request_id'] = 'r-9')],
    ['tenant', (e: MutableBundle) => void (e['tenant'] = 'globex')],
    ['identity', (e: MutableBundle) => void (e['actor']['id'] = 'agent-2')],
    ['tool', (e: MutableBundle) => void (e['payload']['tool'] = 'send_email')],
  ])('a Gate record with another %s than its (unchanged) signed request: REQUEST_EVIDENCE', (_n, edit) => {
    const { report, bundle } = forge(base, (b) => edit(entryAt(b, 'gateway.accepted')));
    expect(findingsOf(report, CHECK)).toContainEqual(
      expect.objectContaining({ code: 'REQUEST_EVIDENCE', index: at(bundle, 'gateway.accepted') }),
    );
  });
});

describe('SPEC §5: records outside any trace are still judged (no trace to search)', () => {
  it('a Gate record with an empty trace id: OUTCOME_MISSING and REQUEST_EVIDENCE, never a check error', () => {
    let index = -1;
    const { report } = forge(base, (b) => {
      index = at(b, 'gateway.accepted');
      entryAt(b, 'gateway.accepted')['trace_id'] = '';
    });
    expect(report.checks.find((c) => c.id === CHECK)?.status).toBe('fail');
    expect(findingsOf(report, CHECK).map((f) => ({ code: f.code, index: f.index }))).toEqual([
      { code: 'OUTCOME_MISSING', index },
      { code: 'REQUEST_EVIDENCE', index },
    ]);
  });

  it('an abandoned record with an empty trace id saying nothing ran: no receipt to contradict it (no finding)', () => {
    const { report } = forge(base, (b) => {
      const c = entryAt(b, 'gateway.completed');
      c['type'] = 'request.abandoned';
      c['trace_id'] = '';
      c['payload'] = { code: 'ERR_ABANDONED', outcome: 'abandoned', tool: 'echo', envelope_consumed: false };
    });
    expect(codesOf(report, CHECK)).toEqual(['OUTCOME_MISSING']);
  });
});

describe('FC-INV-5: one outcome per accepted attempt (OUTCOME_DUPLICATE)', () => {
  /** A copy of trace 0's entry of `type`, with `payload` changes. */
  const copyOf = (b: MutableBundle, type: string, payload: Record<string, unknown> = {}): MutableBundle => {
    const e = structuredClone(entryAt(b, type));
    e['payload'] = { ...e['payload'], ...payload };
    return e;
  };

  it('a second gateway.completed for the one accepted attempt (two gates recording one job): OUTCOME_DUPLICATE', () => {
    const { report, bundle } = forge(base, (b) =>
      insert(b, at(b, 'gateway.completed') + 1, copyOf(b, 'gateway.completed')),
    );
    expect(findingsOf(report, CHECK)).toEqual([
      expect.objectContaining({ code: 'OUTCOME_DUPLICATE', index: at(bundle, 'gateway.completed') + 1 }),
    ]);
  });

  it('a gateway.failed or request.abandoned after the completed attempt: OUTCOME_DUPLICATE', () => {
    for (const [type, payload] of [
      ['gateway.failed', { code: 'ERR_TOOL_FAILED', status: 'execution', outcome: 'deny' }],
      ['request.abandoned', { code: 'ERR_ABANDONED', outcome: 'abandoned', envelope_consumed: true }],
    ] as const) {
      const { report, bundle } = forge(base, (b) => {
        const e = copyOf(b, 'gateway.completed', payload);
        e['type'] = type;
        delete e['payload']['result_sha256'];
        insert(b, at(b, 'gateway.completed') + 1, e);
      });
      expect(codesOf(report, CHECK), type).toEqual(['OUTCOME_DUPLICATE']);
      expect(findingsOf(report, CHECK)[0]).toMatchObject({ index: at(bundle, type) });
    }
  });

  it('an identical replay refused at ingress in the same trace after the outcome: no finding', () => {
    const { report } = forge(base, (b) =>
      insert(
        b,
        at(b, 'gateway.completed') + 1,
        (() => {
          const e = copyOf(b, 'gateway.completed', {
            code: 'ERR_REQUEST_REPLAYED',
            status: 'ingress',
            outcome: 'deny',
          });
          e['type'] = 'gateway.failed';
          delete e['payload']['result_sha256'];
          return e;
        })(),
      ),
    );
    expect(findingsOf(report, CHECK)).toEqual([]);
  });

  it('a second accepted attempt in the same trace with its own outcome: no finding', () => {
    const { report } = forge(base, (b) => {
      const i = at(b, 'gateway.completed') + 1;
      insert(b, i, copyOf(b, 'gateway.accepted'));
      insert(b, i + 1, copyOf(b, 'gateway.completed'));
    });
    expect(codesOf(report, CHECK).filter((c) => c === 'OUTCOME_DUPLICATE')).toEqual([]);
  });
});
