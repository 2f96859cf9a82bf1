/**
 * The bundle's keys agree with the pinned trust file (SPEC §5 "Trust roots out of band"): the
 * bundle is for the pinned origin, and every issuer and approver key it carries is a pinned key
 * with the same material. The other checks already verify only under pinned keys; this one names
 * a bundle that carries a key its auditor never pinned (a substituted or newer key: obtain the
 * trust roots again). Applies only with `--trust`. (L7 ledger protection, L7 identity signing)
 */
import { parsePublicJwk, type JsonObject, type JsonValue, type PublicKey } from '../../kernel/index.js';
import type { Finding, VerifyCheck } from '../types.js';

const isObj = (v: JsonValue | undefined): v is JsonObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function compare(
  jwks: JsonValue | undefined,
  pinned: ReadonlyMap<string, PublicKey>,
  what: string,
  out: Finding[],
): void {
  // Attacker-controlled: the bundle's JWKS; an unusable key is reported, never skipped.
  const keys = isObj(jwks) && Array.isArray(jwks['keys']) ? jwks['keys'] : [];
  for (const k of keys) {
    let key: PublicKey;
    try {
      key = parsePublicJwk(k);
    } catch {
      out.push({ code: 'TRUST_ROOT_MISMATCH', message: `the bundle carries an unusable ${what} key` });
      continue;
    }
    const p = pinned.get(key.kid);
    if (p === undefined)
      out.push({ code: 'TRUST_ROOT_MISMATCH', message: `the bundle's ${what} key ${key.kid} is not pinned` });
    // Defence in depth that no input can reach: a kid is its key's RFC 7638 thumbprint (checked by
    // parsePublicJwk here and when the trust file is read), so one kid cannot name two materials.
    else if (!p.raw.equals(key.raw))
      out.push({
        code: 'TRUST_ROOT_MISMATCH',
        message: `the bundle's ${what} key ${key.kid} differs from the pinned one`,
      });
  }
}

/** Trust roots check. */
export const trustRootsCheck: VerifyCheck = {
  id: 'trust-roots',
  title: 'the bundle carries only keys of the pinned trust roots, for the pinned origin',
  requirements: ['L7-ledger-protection', 'L7-identity-signing'],
  applies: (ctx) => ctx.roots !== undefined,
  run: (ctx) => {
    const roots = ctx.roots;
    // Stryker disable next-line ConditionalExpression,ArrayDeclaration: equivalent, applies() runs the check only with pinned roots
    if (roots === undefined) return [];
    const out: Finding[] = [];
    if (ctx.bundle.origin !== roots.origin)
      out.push({
        code: 'TRUST_ROOT_MISMATCH',
        message: `the bundle origin ${JSON.stringify(ctx.bundle.origin)} is not the pinned origin ${JSON.stringify(roots.origin)}`,
      });
    // Stryker disable next-line StringLiteral: message text only, the key set's name in a finding's message
    compare(ctx.bundle.jwks['issuer'], roots.issuerKeys, 'issuer', out);
    // Stryker disable next-line StringLiteral: message text only, the key set's name in a finding's message
    compare(ctx.bundle.jwks['approvers'], roots.approverKeys, 'approver', out);
    return out;
  },
};
