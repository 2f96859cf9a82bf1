/**
 * The offline envelope-binding check (SPEC §3 "The approval envelope", SPEC §5 "every envelope
 * signature and binding", OE-INV-017, FC-INV-4): each tamper is made by the consistent forger
 * (forge.ts: chain, hashes, moved ledger claims re-signed, checkpoint re-signed and pinned), so
 * only the envelope-binding check can catch it; every test names the finding code and the entry.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { canonicalize, envelopeSha256, sha256Hex } from '../../src/kernel/index.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';
import { verifyBundle } from '../../src/verify/index.js';
import {
  at,
  codesOf,
  drop,
  entriesOf,
  entryAt,
  expectFinding,
  failing,
  findingsOf,
  forge,
  insert,
  reissue,
  undecidedOf,
} from './forge.js';
import { makeBundle, mutable, rehash, text, type MutableBundle } from './helpers.js';
import { ISSUER_KEY, POLICY_HASH, traceIdOf } from './realistic.js';
import { breakSignature, relink, resignEnvelope, swapConsumed } from './relink.js';

const CHECK = 'envelope-binding';
/** Registration, two whole traces (entries 1–5 and 6–10), the export record. */
let base: string;
/** The forger's ledger key (the same for every forged bundle of this origin). */
let forgerVkey: string;

beforeAll(async () => {
  base = (await makeBundle(11)).text;
  forgerVkey = relink(mutable(base), ISSUER_KEY).vkey;
});

const OTHER_HEX = 'ab'.repeat(32);

describe('SPEC §3: an honest envelope record passes', () => {
  it('the forger alone changes nothing: every check passes', () => {
    const { report } = forge(base, () => undefined);
    expect(report.exitCode).toBe(0);
    expect(report.checks.find((c) => c.id === CHECK)?.status).toBe('pass');
  });
});

describe('FC-INV-4 / SPEC §3: the ledger claim names an earlier decision that allowed exactly this call', () => {
  it('FC-INV-4: an envelope tied to a denied decision (never consumed) fails on ENVELOPE_LEDGER alone', () => {
    const { report, bundle } = forge(base, (b) => {
      entryAt(b, 'decision')['payload']['outcome'] = 'deny';
      drop(b, 'execution.receipt');
    });
    expectFinding(report, CHECK, 'ENVELOPE_LEDGER', [at(bundle, 'envelope.issued')]);
  });

  it('FC-INV-4: an executed envelope tied to a denied decision fails in envelope-binding and receipt-linkage', () => {
    const { report, bundle } = forge(base, (b) => {
      entryAt(b, 'decision')['payload']['outcome'] = 'deny';
    });
    expectFinding(
      report,
      CHECK,
      'ENVELOPE_LEDGER',
      [at(bundle, 'envelope.issued')],
      [CHECK, 'receipt-linkage'],
    );
    expect(codesOf(report, 'receipt-linkage')).toEqual(['RECEIPT_DENIED']);
  });

  /** The decision of trace 0 escalated, with an `approval.finalized` of `verdict` at `where` (or none). */
  const escalated = (verdict: string | undefined, where: 'before' | 'after') => (b: MutableBundle) => {
    entryAt(b, 'decision')['payload']['outcome'] = 'escalate';
    drop(b, 'execution.receipt');
    if (verdict === undefined) return;
    const issued = at(b, 'envelope.issued');
    insert(b, where === 'before' ? issued : issued + 1, {
      type: 'approval.finalized',
      trace_id: traceIdOf(0),
      request_id: 'r-0',
      tenant: 'acme',
      actor: { id: 'control-plane', role: 'control-plane' },
      payload: { decision_id: 'd-0', verdict, required: 1, approvers: ['alice'] },
    });
  };

  it.each([
    ['no finalisation', undefined, 'before'],
    ['a rejection', 'reject', 'before'],
    ['an approval recorded only after the envelope', 'approve', 'after'],
  ] as const)(
    'FC-INV-4: an escalated decision with %s did not allow the call: ENVELOPE_LEDGER',
    (_n, verdict, where) => {
      const { report, bundle } = forge(base, escalated(verdict, where));
      expect(findingsOf(report, CHECK)).toEqual([
        expect.objectContaining({ code: 'ENVELOPE_LEDGER', index: at(bundle, 'envelope.issued') }),
      ]);
    },
  );

  it('FC-INV-4: a finalised approval cannot turn a denied decision into an allowed one', () => {
    const { report, bundle } = forge(base, (b) => {
      escalated('approve', 'before')(b);
      entryAt(b, 'decision')['payload']['outcome'] = 'deny';
    });
    expect(findingsOf(report, CHECK)).toEqual([
      expect.objectContaining({ code: 'ENVELOPE_LEDGER', index: at(bundle, 'envelope.issued') }),
    ]);
  });

  it.each(['approve', 'break_glass'])(
    'FC-INV-4: an escalated decision finalised %s before issuance allows the envelope',
    (verdict) => {
      const { report } = forge(base, escalated(verdict, 'before'));
      expect(findingsOf(report, CHECK)).toEqual([]);
    },
  );

  it.each([
    ['tool', (d: MutableBundle) => void (d['payload']['tool'] = 'send_email')],
    ['subject (client)', (d: MutableBundle) => void (d['payload']['client'] = 'agent-2')],
    ['parameters', (d: MutableBundle) => void (d['payload']['params_sha256'] = OTHER_HEX)],
    ['tenant', (d: MutableBundle) => void (d['tenant'] = 'globex')],
    ['request id', (d: MutableBundle) => void (d['request_id'] = 'r-other')],
  ])('SPEC §3: a decision for another %s than the envelope: ENVELOPE_LEDGER alone', (_n, edit) => {
    const { report, bundle } = forge(base, (b) => edit(entryAt(b, 'decision')));
    expectFinding(report, CHECK, 'ENVELOPE_LEDGER', [at(bundle, 'envelope.issued')]);
  });

  it('SPEC §3: a decision with another decision id than the envelope (never consumed): ENVELOPE_LEDGER alone', () => {
    const { report, bundle } = forge(base, (b) => {
      entryAt(b, 'decision')['payload']['decision_id'] = 'd-other';
      drop(b, 'execution.receipt');
    });
    expectFinding(report, CHECK, 'ENVELOPE_LEDGER', [at(bundle, 'envelope.issued')]);
  });

  it('SPEC §3 / L7 Boundary B: a ledger claim naming an entry that is not in a complete bundle', () => {
    const { report, bundle } = forge(base, (b) =>
      reissue(b, 0, (c) => void (c['ledger'] = { index: 999, entry_hash: OTHER_HEX })),
    );
    expectFinding(report, CHECK, 'ENVELOPE_LEDGER', [at(bundle, 'envelope.issued')]);
    expect(undecidedOf(report, CHECK)).toEqual([]);
  });

  it('SPEC §3: a ledger claim naming a non-decision entry, or the decision under another hash', () => {
    const other = forge(base, (b) =>
      reissue(b, 0, (c) => {
        const accepted = entryAt(b, 'gateway.accepted');
        c['ledger'] = { index: accepted['index'], entry_hash: accepted['entry_hash'] };
      }),
    );
    expectFinding(other.report, CHECK, 'ENVELOPE_LEDGER', [at(other.bundle, 'envelope.issued')]);
    const hash = forge(base, (b) =>
      reissue(b, 0, (c) => void (c['ledger'] = { index: c['ledger']['index'], entry_hash: OTHER_HEX })),
    );
    expectFinding(hash.report, CHECK, 'ENVELOPE_LEDGER', [at(hash.bundle, 'envelope.issued')]);
  });

  it('GEI decision before execution: a ledger claim naming a decision recorded after the envelope', () => {
    const { report, bundle } = forge(base, (b) => {
      const e = entriesOf(b);
      const d = at(b, 'decision');
      [e[d], e[d + 1]] = [e[d + 1]!, e[d]!];
      // Settle the new order, then point the (re-signed) envelope at the moved decision.
      relink(b, ISSUER_KEY);
      const moved = entryAt(b, 'decision');
      reissue(b, 0, (c) => void (c['ledger'] = { index: moved['index'], entry_hash: moved['entry_hash'] }));
    });
    expect(at(bundle, 'decision')).toBeGreaterThan(at(bundle, 'envelope.issued'));
    expectFinding(report, CHECK, 'ENVELOPE_LEDGER', [at(bundle, 'envelope.issued')]);
  });

  it('GEI decision before execution: a decision sharing the envelope record’s index does not precede it', () => {
    const { bundle } = forge(base, () => undefined);
    const m = structuredClone(bundle);
    const d = entryAt(m, 'decision');
    d['index'] = entryAt(m, 'envelope.issued')['index'];
    rehash(d);
    reissue(m, 0, (c) => void (c['ledger'] = { index: d['index'], entry_hash: d['entry_hash'] }));
    const r = verifyBundle(text(m), { trustedKey: forgerVkey });
    expect(findingsOf(r, CHECK)).toContainEqual(
      expect.objectContaining({ code: 'ENVELOPE_LEDGER', index: d['index'] }),
    );
    expect(codesOf(r, CHECK)).toEqual(['ENVELOPE_LEDGER']);
  });

  it('SPEC §3: a range export that cuts the decision off leaves the claim undecided, never failed', async () => {
    // Trace 1 is entries 6–10; the range starts at its envelope, after its decision.
    const b = await makeBundle(20, { scope: { from: 8, to: 12 } });
    const r = verifyBundle(b.text, { trustedKey: b.vkey });
    expect(findingsOf(r, CHECK)).toEqual([]);
    // Nor is the Gate record with the signed request in the range: params are undecided too.
    expect(undecidedOf(r, CHECK)).toEqual([
      expect.objectContaining({ code: 'ENVELOPE_LEDGER', index: 8, partial: true }),
      expect.objectContaining({ code: 'ENVELOPE_PARAMS', index: 8, partial: true }),
    ]);
    // An entry missing inside the range is a violation, not a cut.
    const m = mutable(b.text);
    const issued = (m['entries'] as MutableBundle[]).find((e) => e['type'] === 'envelope.issued')!;
    issued['payload']['ledger_ref'] = { index: 10, entry_hash: OTHER_HEX };
    m['entries'] = (m['entries'] as MutableBundle[]).filter((e) => e['index'] !== 10);
    const cut = verifyBundle(text(m), { trustedKey: b.vkey });
    expect(findingsOf(cut, CHECK)).toContainEqual(
      expect.objectContaining({ code: 'ENVELOPE_LEDGER', index: 8 }),
    );
  });
});

describe('SPEC §3: the policy_bundle claim is the decision’s bundle and an exported one', () => {
  it('a decision under another policy bundle: ENVELOPE_POLICY', () => {
    const { report, bundle } = forge(
      base,
      (b) => void (entryAt(b, 'decision')['payload']['policy_bundle'] = OTHER_HEX),
    );
    expectFinding(report, CHECK, 'ENVELOPE_POLICY', [at(bundle, 'envelope.issued')]);
  });

  it('decision and envelope under a bundle that is not exported: ENVELOPE_POLICY; with no bundles exported, not checked', () => {
    const tamper = (b: MutableBundle): void => {
      entryAt(b, 'decision')['payload']['policy_bundle'] = OTHER_HEX;
      reissue(b, 0, (c) => void (c['policy_bundle'] = OTHER_HEX));
    };
    const { report, bundle } = forge(base, tamper);
    expectFinding(report, CHECK, 'ENVELOPE_POLICY', [at(bundle, 'envelope.issued')]);
    const none = forge(base, (b) => {
      tamper(b);
      b['policy_bundles'] = {};
    });
    expect(none.report.exitCode).toBe(0);
  });

  it('an exported policy document that does not hash to its key: ENVELOPE_POLICY naming no entry', () => {
    const { report } = forge(
      base,
      (b) => void (b['policy_bundles'][POLICY_HASH] = { name: 'forged', tools: [] }),
    );
    expect(report.exitCode).toBe(1);
    expect(findingsOf(report, CHECK)).toEqual([
      expect.not.objectContaining({ index: expect.anything() as unknown }),
    ]);
    expect(codesOf(report, CHECK)).toEqual(['ENVELOPE_POLICY']);
    expect(failing(report)).toEqual([CHECK]);
    // The honest document hashes to its key.
    expect(sha256Hex(canonicalize(mutable(base)['policy_bundles'][POLICY_HASH]))).toBe(POLICY_HASH);
  });
});

describe('SPEC §3: aud is the declared executor and the lifetime within its bounds', () => {
  it('no declared executor: EXECUTOR_UNDECLARED; a bundle without envelopes needs none', async () => {
    const { report } = forge(base, (b) => void delete b['executor']);
    expect(codesOf(report, CHECK)).toEqual(['EXECUTOR_UNDECLARED']);
    const quiet = await makeBundle(3);
    const { report: r } = forge(quiet.text, (b) => void delete b['executor']);
    expect(r.exitCode).toBe(0);
  });

  it('another audience: ENVELOPE_AUDIENCE on every envelope', () => {
    const { report, bundle } = forge(base, (b) => void (b['executor'].audience = 'another-executor'));
    expectFinding(report, CHECK, 'ENVELOPE_AUDIENCE', [
      at(bundle, 'envelope.issued', 0),
      at(bundle, 'envelope.issued', 1),
    ]);
  });

  it('OE-INV-017: a lifetime over the declared maximum fails; exactly the maximum passes', () => {
    // Synthetic envelopes live 60 s.
    const over = forge(base, (b) => void (b['executor'].max_lifetime_sec = 59));
    expectFinding(over.report, CHECK, 'ENVELOPE_LIFETIME', [
      at(over.bundle, 'envelope.issued', 0),
      at(over.bundle, 'envelope.issued', 1),
    ]);
    expect(forge(base, (b) => void (b['executor'].max_lifetime_sec = 60)).report.exitCode).toBe(0);
  });

  it.each([
    ['zero', 0],
    ['negative', -1],
  ])('OE-INV-017: a %s lifetime (exp not after iat): ENVELOPE_LIFETIME', (_n, delta) => {
    const { report, bundle } = forge(base, (b) =>
      reissue(b, 0, (c) => void (c['exp'] = (c['iat'] as number) + delta)),
    );
    expect(findingsOf(report, CHECK)).toEqual([
      expect.objectContaining({ code: 'ENVELOPE_LIFETIME', index: at(bundle, 'envelope.issued') }),
    ]);
  });

  it('OE-INV-017: an iat after the issuance record (beyond the clock tolerance) fails; at the tolerance passes', () => {
    // Issuance recorded on a whole second; tolerance 30 s; never consumed (no receipt window).
    const issuedAt = Date.UTC(2025, 0, 1, 0, 0, 10);
    const withIat = (iat: number) =>
      forge(base, (b) => {
        drop(b, 'execution.receipt');
        entryAt(b, 'envelope.issued')['at'] = new Date(issuedAt).toISOString();
        reissue(b, 0, (c) => {
          c['iat'] = iat;
          c['exp'] = iat + 60;
        });
      });
    const late = withIat(issuedAt / 1000 + 31);
    expectFinding(late.report, CHECK, 'ENVELOPE_LIFETIME', [at(late.bundle, 'envelope.issued')]);
    expect(withIat(issuedAt / 1000 + 30).report.exitCode).toBe(0);
  });
});

describe('SPEC §3: the issuer key (pinned, unrevoked) and the consumed envelope', () => {
  /** An `admin.key_revoked` record of the synthetic issuer key, inserted at `position`. */
  const revocation = (b: MutableBundle, position: number, keyUse = 'envelope'): void =>
    insert(b, position, {
      type: 'admin.key_revoked',
      trace_id: 'rev',
      request_id: 'rev',
      payload: {
        kid: ISSUER_KEY.kid,
        key_use: keyUse,
        reason: 'compromised',
        revoked_at: '2025-01-01T00:00:00.000Z',
      },
    });

  it('SPEC §3: an envelope issued under an issuer key revoked earlier in the ledger: ENVELOPE_KEY; one issued before the revocation stands', () => {
    const { report, bundle } = forge(base, (b) => {
      revocation(b, at(b, 'gateway.accepted', 1));
      b['jwks'].issuer.revoked = [ISSUER_KEY.kid];
    });
    expect(at(bundle, 'envelope.issued', 0)).toBeLessThan(at(bundle, 'gateway.accepted', 1));
    expectFinding(report, CHECK, 'ENVELOPE_KEY', [at(bundle, 'envelope.issued', 1)]);
  });

  it('SPEC §3: a ledgered revocation of a key of another use does not revoke the issuer key', () => {
    const { report } = forge(base, (b) => revocation(b, at(b, 'gateway.accepted', 1), 'request'));
    expect(report.exitCode).toBe(0);
  });

  it('SPEC §3: an issuer key the bundle lists as revoked without a ledgered revocation: a violation in a complete bundle', () => {
    const { report, bundle } = forge(base, (b) => void (b['jwks'].issuer.revoked = [ISSUER_KEY.kid]));
    expectFinding(report, CHECK, 'ENVELOPE_KEY', [
      at(bundle, 'envelope.issued', 0),
      at(bundle, 'envelope.issued', 1),
    ]);
  });

  it('SPEC §3: … and undecided in a partial bundle (the revocation may lie outside it)', async () => {
    const b = await makeBundle(20, { scope: { traceId: traceIdOf(1) } });
    const m = mutable(b.text);
    m['jwks'].issuer.revoked = [ISSUER_KEY.kid];
    const r = verifyBundle(text(m), { trustedKey: b.vkey });
    expect(findingsOf(r, CHECK)).toEqual([]);
    expect(undecidedOf(r, CHECK)).toEqual([
      expect.objectContaining({ code: 'ENVELOPE_KEY', partial: true, index: 8 }),
    ]);
  });

  it('SPEC §3: an unusable issuer JWKS: ENVELOPE_KEY', () => {
    const { report, bundle } = forge(base, (b) => void (b['jwks'].issuer = { keys: 'none' }));
    expectFinding(report, CHECK, 'ENVELOPE_KEY', [
      at(bundle, 'envelope.issued', 0),
      at(bundle, 'envelope.issued', 1),
    ]);
  });

  it('SPEC §3: an issuer JWKS key that is not the key ledgered at its rotation: ENVELOPE_KEY; the same key passes', () => {
    const rotation = (jwk: unknown) => (b: MutableBundle) =>
      insert(b, 1, {
        type: 'admin.key_rotated',
        trace_id: 'rot',
        request_id: 'rot',
        payload: {
          kid: ISSUER_KEY.kid,
          previous_kid: null,
          key_use: 'envelope',
          public_jwk: jwk,
          reason: 'rotation',
        },
      });
    expect(forge(base, rotation({ ...ISSUER_KEY.publicJwk })).report.exitCode).toBe(0);
    for (const jwk of [{ ...generateSigningKey().publicJwk }, 'not a key']) {
      const { report, bundle } = forge(base, rotation(jwk));
      expectFinding(report, CHECK, 'ENVELOPE_KEY', [
        at(bundle, 'envelope.issued', 0),
        at(bundle, 'envelope.issued', 1),
      ]);
    }
  });

  it('SPEC §3: an envelope signed under a kid that is not in the issuer JWKS: ENVELOPE_KEY', () => {
    const { report, bundle } = forge(base, (b) => reissue(b, 0, () => undefined, generateSigningKey()));
    expectFinding(report, CHECK, 'ENVELOPE_KEY', [at(bundle, 'envelope.issued')]);
  });

  it('SPEC §3: a consumed envelope that is not the one whose digest was recorded: ENVELOPE_BINDING', () => {
    const { report, bundle } = forge(base, (b) => {
      const r = entryAt(b, 'execution.receipt')['payload'];
      r['envelope'] = resignEnvelope(r['envelope'] as string, ISSUER_KEY, (c) => {
        c['exp'] = (c['exp'] as number) + 1;
      });
      r['envelope_sha256'] = envelopeSha256(r['envelope'] as string);
    });
    expectFinding(
      report,
      CHECK,
      'ENVELOPE_BINDING',
      [at(bundle, 'envelope.issued')],
      [CHECK, 'receipt-linkage'],
    );
  });

  it('SPEC §3: a consumed envelope whose signature does not verify: ENVELOPE_SIGNATURE', () => {
    const { report, bundle } = forge(base, (b) => {
      const r = at(b, 'execution.receipt');
      swapConsumed(b, r, breakSignature(entriesOf(b)[r]!['payload']['envelope'] as string));
    });
    expectFinding(report, CHECK, 'ENVELOPE_SIGNATURE', [at(bundle, 'envelope.issued')]);
  });

  it('SPEC §3: recorded claims that are not the consumed envelope’s: ENVELOPE_BINDING', () => {
    const { report, bundle } = forge(base, (b) => {
      entryAt(b, 'envelope.issued')['payload']['constraints']['timeout_ms'] = 999;
    });
    expectFinding(report, CHECK, 'ENVELOPE_BINDING', [at(bundle, 'envelope.issued')]);
  });

  it('SPEC §3: a recorded kid that is not the consumed envelope’s: ENVELOPE_BINDING (and its signature fails)', () => {
    const other = generateSigningKey();
    const { report, bundle } = forge(base, (b) => {
      b['jwks'].issuer.keys.push({ ...other.publicJwk, kid: other.kid });
      entryAt(b, 'envelope.issued')['payload']['kid'] = other.kid;
    });
    expect(findingsOf(report, CHECK).map((f) => [f.code, f.index])).toEqual([
      ['ENVELOPE_BINDING', at(bundle, 'envelope.issued')],
      ['ENVELOPE_SIGNATURE', at(bundle, 'envelope.issued')],
    ]);
  });

  it.each([
    ['missing', (p: MutableBundle) => void delete p['envelope']],
    ['not an envelope', (p: MutableBundle) => void (p['envelope'] = 'a.b.c')],
  ])('SPEC §3: a consumed envelope that is %s: ENVELOPE_MALFORMED', (_n, edit) => {
    const { report, bundle } = forge(base, (b) => edit(entryAt(b, 'execution.receipt')['payload']));
    expect(findingsOf(report, CHECK)).toEqual([
      expect.objectContaining({ code: 'ENVELOPE_MALFORMED', index: at(bundle, 'envelope.issued') }),
    ]);
  });

  it.each([
    ['no kid', (p: MutableBundle) => void delete p['kid']],
    [
      'a digest that is not lower hex',
      (p: MutableBundle) => void (p['envelope_sha256'] = (p['envelope_sha256'] as string).toUpperCase()),
    ],
    ['no digest', (p: MutableBundle) => void delete p['envelope_sha256']],
    ['incomplete claims', (p: MutableBundle) => void delete p['iat']],
    ['a digest in an array', (p: MutableBundle) => void (p['envelope_sha256'] = [p['envelope_sha256']])],
    [
      'a digest with a prefix',
      (p: MutableBundle) => void (p['envelope_sha256'] = `x${p['envelope_sha256'] as string}`),
    ],
    [
      'a digest with a suffix',
      (p: MutableBundle) => void (p['envelope_sha256'] = `${p['envelope_sha256'] as string}x`),
    ],
  ])('SPEC §3: an envelope.issued record with %s: ENVELOPE_MALFORMED', (_n, edit) => {
    const { report, bundle } = forge(base, (b) => {
      drop(b, 'execution.receipt');
      edit(entryAt(b, 'envelope.issued')['payload']);
    });
    expectFinding(report, CHECK, 'ENVELOPE_MALFORMED', [at(bundle, 'envelope.issued')]);
  });
});

describe('GEI parameter binding: the envelope is bound to the raw signed request', () => {
  /** The call of trace 0 re-bound (decision, envelope and receipt) to `change`d claims; the signed request stays. */
  const rebind =
    (change: (c: MutableBundle) => void, decision: (d: MutableBundle) => void) => (b: MutableBundle) => {
      decision(entryAt(b, 'decision'));
      reissue(b, 0, change);
      const receipt = entryAt(b, 'execution.receipt');
      const claims = entryAt(b, 'envelope.issued');
      receipt['tenant'] = claims['tenant'];
      receipt['payload']['tool'] = claims['payload']['tool'];
      receipt['payload']['params_sha256'] = claims['payload']['params_sha256'];
    };

  it.each([
    [
      'tool',
      rebind(
        (c) => void (c['tool'] = 'send_email'),
        (d) => void (d['payload']['tool'] = 'send_email'),
      ),
    ],
    [
      'tenant',
      rebind(
        (c) => void (c['tenant'] = 'globex'),
        (d) => void (d['tenant'] = 'globex'),
      ),
    ],
    [
      'subject',
      rebind(
        (c) => void (c['sub'] = 'agent-2'),
        (d) => void (d['payload']['client'] = 'agent-2'),
      ),
    ],
    [
      'request id',
      rebind(
        (c) => void (c['request_id'] = 'r-other'),
        (d) => void (d['request_id'] = 'r-other'),
      ),
    ],
  ])(
    'an envelope, decision and receipt for another %s than the signed request: ENVELOPE_BINDING',
    (_n, tamper) => {
      const { report, bundle } = forge(base, tamper);
      expectFinding(report, CHECK, 'ENVELOPE_BINDING', [at(bundle, 'envelope.issued')]);
    },
  );

  it('params_sha256 that is not the hash of the signed parameters: ENVELOPE_PARAMS', () => {
    const { report, bundle } = forge(
      base,
      rebind(
        (c) => void (c['params_sha256'] = OTHER_HEX),
        (d) => void (d['payload']['params_sha256'] = OTHER_HEX),
      ),
    );
    expectFinding(report, CHECK, 'ENVELOPE_PARAMS', [at(bundle, 'envelope.issued')]);
  });

  it('the signed request is found through the decision alone, or through the Gate record alone', () => {
    const viaGate = forge(base, (b) => void delete entryAt(b, 'decision')['payload']['request_sha256']);
    expect(findingsOf(viaGate.report, CHECK)).toEqual([]);
    const viaDecision = forge(
      base,
      (b) => void delete entryAt(b, 'gateway.accepted')['payload']['request_sha256'],
    );
    expect(findingsOf(viaDecision.report, CHECK)).toEqual([]);
  });

  it('only the Gate record of this request in the trace names the signed request', () => {
    // Trace 0's completion and an extra Gate record of another request id both name trace 1's request.
    const { report } = forge(base, (b) => {
      const other = entryAt(b, 'gateway.accepted', 1)['payload']['request_sha256'] as string;
      entryAt(b, 'gateway.completed')['payload']['request_sha256'] = other;
      const accepted = structuredClone(entryAt(b, 'gateway.accepted'));
      accepted['request_id'] = 'r-1';
      accepted['payload']['request_sha256'] = other;
      insert(b, at(b, 'gateway.completed'), accepted);
    });
    expect(findingsOf(report, CHECK)).toEqual([]);
  });

  it.each([
    ['not in the evidence', (b: MutableBundle, sha: string) => void delete b['evidence'][sha]],
    [
      'not a signed request',
      (b: MutableBundle, sha: string) =>
        void (b['evidence'][sha] = {
          media_type: 'application/json',
          body_b64: Buffer.from('{}').toString('base64'),
        }),
    ],
  ])('the signed request of the call %s: ENVELOPE_PARAMS (nothing to check against)', (_n, edit) => {
    const { report, bundle } = forge(base, (b) =>
      edit(b, entryAt(b, 'gateway.accepted')['payload']['request_sha256'] as string),
    );
    expect(findingsOf(report, CHECK)).toEqual([
      expect.objectContaining({ code: 'ENVELOPE_PARAMS', index: at(bundle, 'envelope.issued') }),
    ]);
  });

  it('no signed request of the call in a complete bundle: ENVELOPE_PARAMS', () => {
    const { report, bundle } = forge(base, (b) => {
      delete entryAt(b, 'decision')['payload']['request_sha256'];
      delete entryAt(b, 'gateway.accepted')['payload']['request_sha256'];
    });
    expect(findingsOf(report, CHECK)).toEqual([
      expect.objectContaining({ code: 'ENVELOPE_PARAMS', index: at(bundle, 'envelope.issued') }),
    ]);
  });
});
