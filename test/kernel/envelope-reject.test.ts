import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isDenialCode, verifyEnvelope, verifyEnvelopeAsync } from '../../src/kernel/index.js';
import {
  buildEnvelopeCorpus,
  committedFixtureFiles,
  FIXTURE_DIR,
  fixtureText,
  toVerifyContext,
  writeEnvelopeCorpus,
  type EnvelopeFixture,
} from '../fixtures/envelope-reject/generate.js';

// FC_WRITE_FIXTURES=1 regenerates the committed corpus from the generator.
if (process.env.FC_WRITE_FIXTURES === '1') await writeEnvelopeCorpus();

describe('envelope reject corpus (SPEC §3 verification order, §7 scenarios 1 and 10)', () => {
  // Built inside the tests, not while collecting them (see envelope.test.ts).
  it('committed fixtures are exactly the generator output, one file per case', async () => {
    const built = buildEnvelopeCorpus();
    expect(committedFixtureFiles()).toEqual(built.map((f) => `${f.case}.json`).sort());
    for (const f of built) {
      const path = join(FIXTURE_DIR, `${f.case}.json`);
      expect(existsSync(path)).toBe(true);
      expect(readFileSync(path, 'utf8')).toBe(await fixtureText(f));
    }
  });

  it('covers every envelope denial code up to the policy bundle check', () => {
    const built = buildEnvelopeCorpus();
    const codes = new Set(built.map((f) => f.expected));
    for (const code of [
      'ERR_ENVELOPE_MISSING',
      'ERR_ENVELOPE_MALFORMED',
      'ERR_ENVELOPE_ALG',
      'ERR_ENVELOPE_TYP',
      'ERR_ENVELOPE_HEADER_FORBIDDEN',
      'ERR_ENVELOPE_KID_UNKNOWN',
      'ERR_ENVELOPE_KID_REVOKED',
      'ERR_ENVELOPE_SIGNATURE',
      'ERR_ENVELOPE_NONCANONICAL',
      'ERR_ENVELOPE_CLAIMS',
      'ERR_ENVELOPE_AUDIENCE',
      'ERR_ENVELOPE_NOT_YET_VALID',
      'ERR_ENVELOPE_EXPIRED',
      'ERR_ENVELOPE_LIFETIME',
      'ERR_ENVELOPE_TOOL_MISMATCH',
      'ERR_ENVELOPE_TENANT_MISMATCH',
      'ERR_ENVELOPE_PARAMS_MISMATCH',
      'ERR_ENVELOPE_POLICY_UNKNOWN',
      'allow',
    ]) {
      expect(codes.has(code as EnvelopeFixture['expected'])).toBe(true);
    }
  });

  it.each(committedFixtureFiles())('replays %s', (file) => {
    const f = JSON.parse(readFileSync(join(FIXTURE_DIR, file), 'utf8')) as EnvelopeFixture;
    const result = verifyEnvelope(f.token, toVerifyContext(f.context));
    if (f.expected === 'allow') {
      expect(result.outcome).toBe('allow');
    } else {
      expect(isDenialCode(f.expected)).toBe(true);
      expect(result).toMatchObject({ outcome: 'deny', code: f.expected });
    }
  });

  it.each(committedFixtureFiles())(
    'replays %s through verifyEnvelopeAsync, the same answer',
    async (file) => {
      const f = JSON.parse(readFileSync(join(FIXTURE_DIR, file), 'utf8')) as EnvelopeFixture;
      const ctx = toVerifyContext(f.context);
      expect(await verifyEnvelopeAsync(f.token, ctx)).toEqual(verifyEnvelope(f.token, ctx));
    },
  );

  it('verifyEnvelopeAsync: a kid revoked while its signature is checked off the loop → ERR_ENVELOPE_KID_REVOKED (OE-INV-003)', async () => {
    const f = JSON.parse(readFileSync(join(FIXTURE_DIR, 'valid.json'), 'utf8')) as EnvelopeFixture;
    const ctx = toVerifyContext(f.context);
    expect(await verifyEnvelopeAsync(f.token, ctx)).toMatchObject({ outcome: 'allow' });
    const kid = (
      JSON.parse(Buffer.from(f.token.split('.')[0] ?? '', 'base64url').toString()) as { kid: string }
    ).kid;
    // The status was read before the signature; the revocation lands while it is on the pool.
    const pending = verifyEnvelopeAsync(f.token, ctx);
    ctx.keys.revoke(kid);
    expect(await pending).toMatchObject({ outcome: 'deny', code: 'ERR_ENVELOPE_KID_REVOKED' });
    expect(verifyEnvelope(f.token, ctx)).toMatchObject({ outcome: 'deny', code: 'ERR_ENVELOPE_KID_REVOKED' });
  });
});
