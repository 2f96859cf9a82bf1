/**
 * Envelope binding (SPEC §3, OE-INV-017, GEI parameter binding, L7 Boundary B): every recorded
 * `envelope.issued` record states the claims of an envelope the executor would have accepted for
 * exactly the decided call. The record carries the claims and the SHA-256 of the JWS, never the
 * JWS (an unconsumed envelope is never at rest); its kid is in the bundle's issuer JWKS (not
 * revoked before issuance, matching any ledgered rotation record). Every envelope that ran is in
 * its `execution.receipt`: that JWS hashes to the recorded digest, carries exactly the recorded
 * claims under the recorded kid, and its signature verifies. `aud` is the declared executor and
 * the lifetime within its maximum; the `ledger` claim names an earlier `decision` in the bundle
 * for the same decision, request, tenant, tool, subject and parameters that allowed the call (or
 * was escalated and then finalised as approved); the `policy_bundle` claim is that decision's
 * bundle (and present when bundles were exported); and `params_sha256` is the hash of the
 * parameters in the raw signed request of that call. Envelopes that never ran (voided, expired)
 * are checked on their recorded claims alone.
 */
import {
  canonicalize,
  computeParamsSha256,
  encodeEnvelopeClaims,
  envelopeSha256,
  hexDigestEquals,
  parsePublicJwk,
  sha256Hex,
  type EnvelopeClaims,
  type JsonValue,
  type PublicKey,
} from '../../kernel/index.js';
import type { VerifyContext } from '../context.js';
import { envelopeSignatureHolds } from '../envelope-offline.js';
import { linkageOf, type Linkage, type View } from '../linkage.js';
import { standingCreation } from '../schedule-links.js';
import type { Finding, FindingCode, VerifyCheck } from '../types.js';
import { entryFinding, isHex64 } from './util.js';

type Report = (code: FindingCode, message: string, partial?: boolean) => void;

/** The issuer key of `kid` as the bundle and its ledgered rotations state it, or undefined. */
function checkKey(l: Linkage, v: View, kid: string, bad: Report): PublicKey | undefined {
  if (typeof l.issuerKeys === 'string') return void bad('ENVELOPE_KEY', l.issuerKeys);
  const key = l.issuerKeys.get(kid);
  if (key === undefined) return void bad('ENVELOPE_KEY', `kid ${kid} is not in ${l.issuerSource}`);
  const revokedAt = l.issuerRevokedAt.get(kid);
  if (revokedAt !== undefined) {
    // Stryker disable next-line EqualityOperator: equivalent, the revocation record is never the envelope record itself
    if (revokedAt < v.entry.index) bad('ENVELOPE_KEY', `issued under a key revoked at entry ${revokedAt}`);
  } else if (l.issuerRevoked.has(kid))
    bad('ENVELOPE_KEY', `issued under a revoked key whose revocation is not in this bundle`, true);
  for (const r of l.find('admin.key_rotated', kid)) {
    if (!isKey(r.entry.payload['public_jwk'], key))
      bad('ENVELOPE_KEY', `the issuer JWKS key ${kid} is not the key ledgered at entry ${r.entry.index}`);
  }
  return key;
}

/** True when `jwk` (ledger content) is a public key with the material of `key`. */
function isKey(jwk: JsonValue | undefined, key: PublicKey): boolean {
  try {
    return parsePublicJwk(jwk).raw.equals(key.raw);
  } catch {
    return false;
  }
}

/**
 * Every consumed JWS of this envelope (in its receipts) is the one whose issuance was recorded:
 * same digest, same kid, byte-identical claims, and a signature that verifies.
 */
function checkConsumed(
  l: Linkage,
  v: View,
  c: EnvelopeClaims,
  digest: string,
  key: PublicKey | undefined,
  bad: Report,
): void {
  const claimsText = encodeEnvelopeClaims(c);
  for (const r of l.find('execution.receipt', c.jti)) {
    const e = l.envelope(r);
    if (typeof e === 'string') {
      bad('ENVELOPE_MALFORMED', `the envelope consumed at entry ${r.entry.index} is malformed or missing`);
      continue;
    }
    // It decoded, so the receipt's `envelope` is the JWS string.
    const jws = r.entry.payload['envelope'] as string;
    if (!hexDigestEquals(envelopeSha256(jws), digest))
      bad(
        'ENVELOPE_BINDING',
        `the envelope consumed at entry ${r.entry.index} is not the one recorded as issued`,
      );
    else if (e.kid !== v.entry.payload['kid'] || encodeEnvelopeClaims(e.claims) !== claimsText)
      bad(
        'ENVELOPE_BINDING',
        `the envelope consumed at entry ${r.entry.index} does not carry the recorded claims`,
      );
    if (key !== undefined && !envelopeSignatureHolds(e, key))
      bad(
        'ENVELOPE_SIGNATURE',
        `the signature of the envelope consumed at entry ${r.entry.index} does not verify`,
      );
  }
}

function checkExecutor(l: Linkage, v: View, c: EnvelopeClaims, bad: Report): void {
  const x = l.executor;
  if (typeof x === 'string') return;
  if (c.aud !== x.audience)
    bad(
      'ENVELOPE_AUDIENCE',
      `aud ${JSON.stringify(c.aud)} is not the declared executor ${JSON.stringify(x.audience)}`,
    );
  const lifetime = c.exp - c.iat;
  if (lifetime <= 0 || lifetime > x.maxLifetimeSec)
    bad('ENVELOPE_LIFETIME', `lifetime ${lifetime} s is outside 1..${x.maxLifetimeSec} s`);
  if (c.iat * 1000 > Date.parse(v.entry.at) + x.clockToleranceSec * 1000)
    bad('ENVELOPE_LIFETIME', 'iat lies after the envelope was recorded');
}

/** The decision the `ledger` claim names: in the bundle, earlier, the same call, and allowed (or approved). */
function checkDecision(
  ctx: VerifyContext,
  l: Linkage,
  v: View,
  c: EnvelopeClaims,
  bad: Report,
): View | undefined {
  const d = l.byIndex.get(c.ledger.index);
  if (d === undefined) {
    bad(
      'ENVELOPE_LEDGER',
      `the ledger claim names entry ${c.ledger.index}, which is not in the bundle`,
      !l.inScope(c.ledger.index),
    );
    return undefined;
  }
  const p = d.entry.payload;
  if (
    d.entry.type !== 'decision' ||
    !hexDigestEquals(d.entry.entry_hash, c.ledger.entry_hash) ||
    d.entry.index >= v.entry.index
  ) {
    bad(
      'ENVELOPE_LEDGER',
      `the ledger claim does not name an earlier decision record (entry ${c.ledger.index})`,
    );
    return undefined;
  }
  if (
    p['decision_id'] !== c.decision_id ||
    d.entry.request_id !== c.request_id ||
    d.entry.tenant !== c.tenant ||
    p['tool'] !== c.tool ||
    p['client'] !== c.sub ||
    p['params_sha256'] !== c.params_sha256
  )
    bad(
      'ENVELOPE_LEDGER',
      `decision entry ${d.entry.index} is for another decision, tenant, tool, subject or parameters`,
    );
  const approved = l
    .find('approval.finalized', c.decision_id)
    .some(
      (f) =>
        f.entry.index < v.entry.index &&
        (f.entry.payload['verdict'] === 'approve' || f.entry.payload['verdict'] === 'break_glass'),
    );
  // A scheduled run's escalated decision stands on its schedule's approved creation.
  const standing = p['outcome'] === 'escalate' && standingCreation(l, d, v.entry.index) !== undefined;
  if (!(p['outcome'] === 'allow' || (p['outcome'] === 'escalate' && (approved || standing))))
    bad(
      'ENVELOPE_LEDGER',
      `decision entry ${d.entry.index} did not allow the call (outcome ${JSON.stringify(p['outcome'] ?? null)}, no earlier finalised approval)`,
    );
  if (p['policy_bundle'] !== c.policy_bundle)
    bad('ENVELOPE_POLICY', `policy_bundle is not the bundle of decision entry ${d.entry.index}`);
  const docs = ctx.bundle.policyBundles;
  if (Object.keys(docs).length > 0 && !(c.policy_bundle in docs))
    bad('ENVELOPE_POLICY', 'the policy bundle is not among the exported policy bundles');
  return d;
}

/** `params_sha256` is the hash of the parameters the client signed (GEI parameter binding). */
function checkParams(l: Linkage, v: View, c: EnvelopeClaims, d: View | undefined, bad: Report): void {
  // The raw request's digest as the decision and the Gate recorded it (l.request reads strings only).
  const shas = new Set<JsonValue | undefined>([d?.entry.payload['request_sha256']]);
  for (const t of l.traces.get(v.entry.trace_id) ?? []) {
    if (t.entry.type === 'gateway.accepted' && t.entry.request_id === c.request_id)
      shas.add(t.entry.payload['request_sha256']);
  }
  let checked = false;
  for (const sha of shas) {
    const r = l.request(sha);
    if (r === undefined || typeof r === 'string') continue;
    checked = true;
    if (!hexDigestEquals(paramsHash(r.parameters), c.params_sha256))
      bad(
        'ENVELOPE_PARAMS',
        `params_sha256 is not the hash of the parameters in signed request ${JSON.stringify(sha).slice(1, 17)}…`,
      );
    if (r.action !== c.tool || r.tenant !== c.tenant || r.identity !== c.sub || r.request_id !== c.request_id)
      bad(
        'ENVELOPE_BINDING',
        `the envelope's tool, tenant, subject or request is not that of signed request ${JSON.stringify(sha).slice(1, 17)}…`,
      );
  }
  if (!checked)
    bad(
      'ENVELOPE_PARAMS',
      'no raw signed request of this call is in the bundle to check params_sha256 against',
      true,
    );
}

/** SHA-256 of the canonical parameters, or '' (which no digest equals) when they have no canonical form. */
function paramsHash(parameters: JsonValue): string {
  try {
    return computeParamsSha256(parameters);
  } catch {
    // Stryker disable next-line StringLiteral: equivalent, unreachable (the strict JSON parser already refused what canonicalize refuses) and any non-digest fails alike
    return '';
  }
}

/** An exported policy document hashes (SHA-256 of its canonical bytes) to its key. */
function hashesTo(doc: JsonValue, hash: string): boolean {
  try {
    return hexDigestEquals(sha256Hex(canonicalize(doc)), hash);
  } catch {
    return false;
  }
}

/** Envelope binding check. */
export const envelopeBindingCheck: VerifyCheck = {
  id: 'envelope-binding',
  title:
    'every envelope verifies under the issuer keys and is bound to an earlier allow decision, the executor and the signed parameters',
  requirements: ['OE-INV-017', 'FC-INV-4', 'GEI-param-binding', 'L7-boundary-b'],
  unit: 'requests',
  run: (ctx) => {
    const out: Finding[] = [];
    const l = linkageOf(ctx);
    const envelopes = l.views.filter((v) => v.entry.type === 'envelope.issued');
    if (envelopes.length > 0 && typeof l.executor === 'string')
      out.push({ code: 'EXECUTOR_UNDECLARED', message: l.executor });
    const docs = ctx.bundle.policyBundles;
    for (const [hash, doc] of Object.entries(docs)) {
      if (!hashesTo(doc, hash))
        out.push({
          code: 'ENVELOPE_POLICY',
          message: `policy bundle ${hash.slice(0, 16)}… does not hash to its key`,
        });
    }
    for (const v of envelopes) {
      const bad: Report = (code, message, partial) =>
        void out.push({
          ...entryFinding(v, code, message),
          ...(partial === true ? { partial: true as const } : {}),
        });
      const c = l.issuedClaims(v);
      const kid = v.entry.payload['kid'];
      const digest = v.entry.payload['envelope_sha256'];
      if (c === undefined || typeof kid !== 'string' || !isHex64(digest)) {
        bad('ENVELOPE_MALFORMED', 'the record does not state the envelope claims, kid and digest');
        continue;
      }
      const key = checkKey(l, v, kid, bad);
      checkConsumed(l, v, c, digest, key, bad);
      checkExecutor(l, v, c, bad);
      const d = checkDecision(ctx, l, v, c, bad);
      checkParams(l, v, c, d, bad);
    }
    return out;
  },
};
