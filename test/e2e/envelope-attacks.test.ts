/**
 * SPEC §7 scenario 10 end to end: hostile envelopes presented to the Execution Layer's own
 * listener over HTTP (SPEC §3 verification order), in both topologies (harness.ts): `embedded`,
 * and `distributed`, where the Execution Layer is a separate composition (`startExecutorNode`,
 * public keys only, fetched from the Gate process) and the attacks reach it over mutual TLS with
 * a `gate` certificate, so every verdict is its own envelope check (FC-INV-6). Each starts from
 * a real, unused envelope issued by the Control Plane; the well-signed variants are signed with
 * the real issuer key, so only the property under test is wrong. Every test asserts the code and
 * that no tool ran. A separate Execution Layer follows a rotation or revocation within its
 * `keys_max_age_ms` (docs/deployment.md): the revocation test moves the test clock past that
 * bound (no move embedded). A new key it uses at once: a kid its copy does not know makes it
 * fetch the keys again (at most once per `KID_REFETCH_MS`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jwkThumbprint, keyRingFromJwks } from '../../src/kernel/index.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';
import type { E2e } from './harness.js';
import { ALL_TOPOLOGIES, expectDenied, session, startE2e } from './harness.js';
import { partsOf, signHmac, signRaw } from './forge.js';

describe.each(ALL_TOPOLOGIES)('%s topology', (topology) => {
  let e2e: E2e;
  const params = { message: 'scenario 10' };
  let envelope: string;

  beforeAll(async () => {
    e2e = await startE2e({ topology });
    ({ envelope } = await e2e.unusedEnvelope('echo', params));
  }, 60_000);

  afterAll(async () => {
    await e2e?.close();
  });

  const present = (env: string) => () => e2e.execute({ envelope: env, tool: 'echo', tenant: 'acme', params });
  const headerWith = (h: Record<string, unknown>): string => JSON.stringify(h);
  const b64 = (s: string): string => Buffer.from(s).toString('base64url');

  describe('scenario 10: keys', () => {
    it('scenario 10: an envelope signed by an unknown key (its own kid) → ERR_ENVELOPE_KID_UNKNOWN', async () => {
      const stranger = generateSigningKey();
      const { payload } = partsOf(envelope);
      const forged = signRaw(
        headerWith({ alg: 'EdDSA', kid: stranger.kid, typ: 'fc-envelope+jwt' }),
        payload,
        stranger,
      );
      await expectDenied(e2e, 'ERR_ENVELOPE_KID_UNKNOWN', present(forged));
    });

    it('scenario 10: a low-order public key is never pinned, and its kid is refused', async () => {
      // The Ed25519 identity point (order 1): any signature "verifies" under it in naive code.
      const x = b64(String.fromCharCode(1) + '\0'.repeat(31));
      expect(() => keyRingFromJwks({ keys: [{ kty: 'OKP', crv: 'Ed25519', x }] })).toThrow(
        expect.objectContaining({ code: 'ERR_KEY_INVALID' }),
      );
      const { payload } = partsOf(envelope);
      const header = b64(headerWith({ alg: 'EdDSA', kid: jwkThumbprint({ x }), typ: 'fc-envelope+jwt' }));
      const forged = `${header}.${b64(payload)}.${b64('\0'.repeat(64))}`;
      await expectDenied(e2e, 'ERR_ENVELOPE_KID_UNKNOWN', present(forged));
    });
  });

  describe('scenario 10: algorithms and headers', () => {
    it('scenario 10: alg "none" (with or without a signature) → ERR_ENVELOPE_ALG', async () => {
      const { header, payload } = partsOf(envelope);
      const none = b64(header.replace('"EdDSA"', '"none"'));
      await expectDenied(e2e, 'ERR_ENVELOPE_ALG', present(`${none}.${b64(payload)}.${b64('x')}`));
      await expectDenied(e2e, 'ERR_ENVELOPE_ALG', present(`${none}.${b64(payload)}.`));
    });

    it('scenario 10: algorithm confusion (HS256 keyed with the issuer public key) → ERR_ENVELOPE_ALG', async () => {
      const { header, payload } = partsOf(envelope);
      const kid = (JSON.parse(header) as { kid: string }).kid;
      const publicX = Buffer.from(e2e.issuerKey().publicJwk.x, 'base64url');
      const forged = signHmac(headerWith({ alg: 'HS256', kid, typ: 'fc-envelope+jwt' }), payload, publicX);
      await expectDenied(e2e, 'ERR_ENVELOPE_ALG', present(forged));
    });

    it('scenario 10: crit, jku, jwk, x5u and b64 headers, well signed by the issuer → ERR_ENVELOPE_HEADER_FORBIDDEN', async () => {
      const key = e2e.issuerKey();
      const { payload } = partsOf(envelope);
      const extras: Record<string, unknown>[] = [
        { crit: ['exp'] },
        { jku: 'https://attacker.example/jwks.json' },
        { jwk: { kty: 'OKP', crv: 'Ed25519', x: key.publicJwk.x } },
        { x5u: 'https://attacker.example/cert.pem' },
        { b64: false },
      ];
      for (const extra of extras) {
        const forged = signRaw(
          headerWith({ alg: 'EdDSA', ...extra, kid: key.kid, typ: 'fc-envelope+jwt' }),
          payload,
          key,
        );
        await expectDenied(e2e, 'ERR_ENVELOPE_HEADER_FORBIDDEN', present(forged));
      }
    });

    it('scenario 10: duplicate JSON keys in the header or payload, well signed → ERR_ENVELOPE_NONCANONICAL', async () => {
      const key = e2e.issuerKey();
      const { header, payload } = partsOf(envelope);
      const dupHeader = header.replace('{', '{"alg":"EdDSA",');
      await expectDenied(e2e, 'ERR_ENVELOPE_NONCANONICAL', present(signRaw(dupHeader, payload, key)));
      // Two tenant claims: a last-wins parser would read "acme" while another reads "globex".
      const dupPayload = payload.replace('{', '{"tenant":"globex",');
      await expectDenied(e2e, 'ERR_ENVELOPE_NONCANONICAL', present(signRaw(header, dupPayload, key)));
    });

    it('scenario 10: duplicate keys in the HTTP body to the Execution Layer → ERR_JSON_DUPLICATE_KEY', async () => {
      const body = `{"envelope":${JSON.stringify(envelope)},"tool":"echo","tool":"send_email","tenant":"acme","params":${JSON.stringify(params)}}`;
      await expectDenied(e2e, 'ERR_JSON_DUPLICATE_KEY', () => e2e.execute(body));
    });

    it('none of the attacks consumed the genuine envelope: it runs exactly once', async () => {
      const before = e2e.totalRuns();
      expect((await present(envelope)()).body).toMatchObject({ outcome: 'executed' });
      await expectDenied(e2e, 'ERR_NONCE_REPLAYED', present(envelope));
      expect(e2e.totalRuns()).toBe(before + 1);
    });
  });

  describe('scenario 10: revoked key', () => {
    it('scenario 10: after rotation and revocation, envelopes of the old key → ERR_ENVELOPE_KID_REVOKED', async () => {
      const p = { message: 'revoked' };
      const old = await e2e.unusedEnvelope('echo', p);
      const cp = e2e.instance.core.controlPlane;
      const operator = { id: 'operator', role: 'operator' };
      const rotated = await cp.rotateIssuerKey(operator, 'e2e: rotate');
      expect(rotated).toMatchObject({ outcome: 'ok' });
      if (rotated.outcome !== 'ok') return;
      // The executor follows the published keys (a separate one within its bound): a call signed
      // by the new key runs.
      const lag = e2e.keysMaxAgeMs;
      // Moves the test clock past the bound (embedded: no bound, no move).
      const followed = async (): Promise<void> => {
        if (lag > 0) await e2e.setClock(e2e.clock.now() - Date.now() + lag + 1);
      };
      try {
        await followed();
        expect(await e2e.client().call('echo', { message: 'new key' }, { session: session() })).toMatchObject(
          { outcome: 'executed' },
        );
        expect(await cp.revokeIssuerKey(rotated.previous_kid ?? '', operator, 'e2e: revoke')).toMatchObject({
          outcome: 'ok',
        });
        await followed();
        await expectDenied(e2e, 'ERR_ENVELOPE_KID_REVOKED', () =>
          e2e.execute({ envelope: old.envelope, tool: 'echo', tenant: 'acme', params: p }),
        );
      } finally {
        await e2e.setClock(0);
      }
    });

    it('scenario 10: a revocation reaches the Execution Layer within its bound after its clock went back', async () => {
      const lag = e2e.keysMaxAgeMs;
      try {
        await e2e.setClock(0);
        // Keys held as of now (distributed: fetched at this clock, or later by a clock since set back).
        expect(await e2e.client().call('echo', { message: 'held' }, { session: session() })).toMatchObject({
          outcome: 'executed',
        });
        // The clock goes back half a minute: a held copy must not look younger than it is.
        await e2e.setClock(-30_000);
        const p = { message: 'clock went back' };
        const old = await e2e.unusedEnvelope('echo', p);
        const cp = e2e.instance.core.controlPlane;
        const operator = { id: 'operator', role: 'operator' };
        const rotated = await cp.rotateIssuerKey(operator, 'e2e: rotate after the clock went back');
        expect(rotated).toMatchObject({ outcome: 'ok' });
        if (rotated.outcome !== 'ok') return;
        expect(await cp.revokeIssuerKey(rotated.previous_kid ?? '', operator, 'e2e: revoke')).toMatchObject({
          outcome: 'ok',
        });
        await e2e.setClock(-30_000 + lag + 1);
        await expectDenied(e2e, 'ERR_ENVELOPE_KID_REVOKED', () =>
          e2e.execute({ envelope: old.envelope, tool: 'echo', tenant: 'acme', params: p }),
        );
      } finally {
        await e2e.setClock(0);
      }
    });

    // A separate Execution Layer holds the keys of before the rotation; the new kid, unknown to
    // that copy, makes it fetch them again, so the new key is used at once, as embedded.
    it('scenario 10: right after a rotation, a call signed by the new key runs', async () => {
      expect(await e2e.client().call('echo', { message: 'warm' }, { session: session() })).toMatchObject({
        outcome: 'executed',
      });
      const rotated = await e2e.instance.core.controlPlane.rotateIssuerKey(
        { id: 'operator', role: 'operator' },
        'e2e: rotate again',
      );
      expect(rotated).toMatchObject({ outcome: 'ok' });
      const before = e2e.totalRuns();
      expect(await e2e.client().call('echo', { message: 'at once' }, { session: session() })).toMatchObject({
        outcome: 'executed',
      });
      expect(e2e.totalRuns()).toBe(before + 1);
    });
  });
});
