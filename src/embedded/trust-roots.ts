/**
 * The deployment's trust roots as one document (docs/ledger.md "Trust roots", SPEC §5 "Trust
 * roots out of band"): the ledger origin and checkpoint verifier key (C2SP vkey, and the same key
 * as a JWK), the issuer JWKS with retired and revoked keys, and the approver JWKS. Served by
 * `GET /v1/trust-roots` and printed by `failclosed trust-roots`; public keys only, unsigned on
 * purpose: the auditor pins what they obtained out of band and checks bundles against it
 * (`failclosed verify --trust FILE`).
 *
 * Client request keys are not trust roots: each enters through a ledgered
 * `admin.client_registered` record (with its public JWK), which the pinned checkpoint covers,
 * and they change with every `clients add`, so a pinned copy would only go stale.
 */
import { keyRingFromJwks, type Ed25519Jwks, type JsonObject, type JsonValue } from '../kernel/index.js';
import type { Ledger } from '../ledger/index.js';
import { TRUST_ROOTS_FORMAT } from '../verify/index.js';

/** Where the trust roots are read from, at the moment of each request. */
export interface TrustRootSources {
  readonly ledger: Pick<Ledger, 'origin' | 'ledgerKey'>;
  readonly issuerJwks: () => JsonValue;
  readonly approverJwks: () => Promise<Ed25519Jwks>;
}

function jwksJson(j: Ed25519Jwks): JsonObject {
  return { keys: j.keys.map((k) => ({ ...k })), revoked: [...j.revoked] };
}

/** Builds the trust file (`failclosed.trust-roots/v1`). Rejects when a key source is unusable. */
export async function buildTrustRoots(s: TrustRootSources): Promise<JsonObject> {
  const approvers = jwksJson(await s.approverJwks());
  return {
    format: TRUST_ROOTS_FORMAT,
    origin: s.ledger.origin,
    ledger: { vkey: s.ledger.ledgerKey.vkey, jwk: { ...s.ledger.ledgerKey.jwk } },
    issuer: jwksJson(keyRingFromJwks(s.issuerJwks()).toJwks()),
    approvers,
  };
}
