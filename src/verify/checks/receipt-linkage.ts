/**
 * Receipt linkage (OE-INV-015, OE-INV-017, FC-INV-4, GEI "decision before execution"): every
 * `execution.receipt` follows an allow decision (or an escalation finalised as approved) for its
 * decision id, never a denied one; it follows the `envelope.issued` record of its nonce for the
 * same decision, tool, tenant and parameters; it ran within that envelope's validity window
 * (start of the run = receipt time − duration, with the declared clock tolerance); it carries
 * the consumed JWS and its digest, which is the digest recorded at issuance; no nonce is
 * consumed twice (single use), and none after its envelope was voided.
 */
import { envelopeSha256, hexDigestEquals, type EnvelopeClaims } from '../../kernel/index.js';
import { linkageOf, refNames, str, type Linkage, type View } from '../linkage.js';
import { standingCreation } from '../schedule-links.js';
import type { Finding, FindingCode, VerifyCheck } from '../types.js';
import { entryFinding } from './util.js';

type Report = (code: FindingCode, message: string, partial?: boolean) => void;

function checkDecision(l: Linkage, r: View, id: string, bad: Report): void {
  const d = l.decisions.get(id);
  if (d === undefined) return bad('RECEIPT_NO_DECISION', `no decision record for decision ${id}`, true);
  if (d.entry.index > r.entry.index)
    return bad('RECEIPT_NO_DECISION', `the decision (entry ${d.entry.index}) comes after the execution`);
  const outcome = d.entry.payload['outcome'];
  const approved = l
    .find('approval.finalized', id)
    .some(
      (f) =>
        f.entry.index < r.entry.index &&
        (f.entry.payload['verdict'] === 'approve' || f.entry.payload['verdict'] === 'break_glass'),
    );
  // A scheduled run's escalated decision stands on its schedule's approved creation.
  const standing = outcome === 'escalate' && standingCreation(l, d, r.entry.index) !== undefined;
  if (!(outcome === 'allow' || (outcome === 'escalate' && (approved || standing))))
    bad(
      'RECEIPT_DENIED',
      `executed although decision entry ${d.entry.index} is ${JSON.stringify(outcome ?? null)}${outcome === 'escalate' ? ' without a finalised approval' : ''}`,
    );
  const ref = r.entry.payload['decision_ref'];
  if (ref !== undefined && !refNames(ref, d.entry.index, d.entry.entry_hash))
    bad('RECEIPT_BINDING', `decision_ref does not name decision entry ${d.entry.index}`);
}

function checkEnvelope(
  l: Linkage,
  r: View,
  id: string,
  jti: string,
  bad: Report,
): EnvelopeClaims | undefined {
  const issued = l.find('envelope.issued', jti);
  const env = issued.find((v) => v.entry.index < r.entry.index);
  if (env === undefined) {
    // Recorded only after the run: a finding in any bundle. Not recorded here: outside a partial one.
    if (issued.length > 0)
      bad('RECEIPT_NO_ENVELOPE', `the envelope for nonce ${jti} is recorded only after the execution`);
    else bad('RECEIPT_NO_ENVELOPE', `no envelope.issued record for nonce ${jti}`, true);
    return undefined;
  }
  const p = r.entry.payload;
  const jws = p['envelope'];
  const digest = p['envelope_sha256'];
  const issuedDigest = env.entry.payload['envelope_sha256'];
  if (
    typeof jws !== 'string' ||
    typeof digest !== 'string' ||
    typeof issuedDigest !== 'string' ||
    !hexDigestEquals(envelopeSha256(jws), digest) ||
    !hexDigestEquals(digest, issuedDigest)
  )
    bad(
      'RECEIPT_BINDING',
      `the receipt does not carry the consumed envelope whose digest was recorded at entry ${env.entry.index}`,
    );
  const voided = l
    .find('envelope.voided', jti)
    .find((x) => x.entry.index < r.entry.index && x.entry.payload['nonce_voided'] === true);
  if (voided !== undefined)
    bad('NONCE_REUSED', `nonce ${jti} was voided at entry ${voided.entry.index} before this execution`);
  const c = l.issuedClaims(env);
  if (c === undefined) return undefined;
  // The claims are read from the issuance record itself, so c.decision_id is its decision_id.
  if (
    c.decision_id !== id ||
    c.tenant !== r.entry.tenant ||
    (p['tool'] !== undefined && p['tool'] !== c.tool) ||
    (p['params_sha256'] !== undefined && p['params_sha256'] !== c.params_sha256)
  )
    bad(
      'RECEIPT_BINDING',
      `the receipt is not for the decision, tenant, tool and parameters of envelope entry ${env.entry.index}`,
    );
  return c;
}

function checkWindow(l: Linkage, r: View, c: EnvelopeClaims, bad: Report): void {
  const tol = typeof l.executor === 'string' ? 0 : l.executor.clockToleranceSec * 1000;
  const d = r.entry.payload['duration_ms'];
  // A negative, fractional or mistyped duration counts as none: the run is dated by the receipt alone.
  const started =
    Date.parse(r.entry.at) - (typeof d === 'number' && Number.isSafeInteger(d) ? Math.max(d, 0) : 0);
  if (started < c.iat * 1000 - tol || started >= c.exp * 1000 + tol)
    bad(
      'RECEIPT_OUTSIDE_VALIDITY',
      `the run started at ${new Date(started).toISOString()}, outside the envelope's validity (iat ${c.iat}, exp ${c.exp}, tolerance ${tol / 1000} s)`,
    );
}

/** Receipt linkage check. */
export const receiptLinkageCheck: VerifyCheck = {
  id: 'receipt-linkage',
  title:
    'every execution receipt follows an allow decision and its envelope, within its validity, with a single-use nonce',
  requirements: ['OE-INV-015', 'OE-INV-017', 'FC-INV-4', 'GEI-decision-before-execution'],
  unit: 'requests',
  run: (ctx) => {
    const out: Finding[] = [];
    const l = linkageOf(ctx);
    const receipts = l.views.filter((v) => v.entry.type === 'execution.receipt');
    if (receipts.length > 0 && typeof l.executor === 'string')
      out.push({ code: 'EXECUTOR_UNDECLARED', message: l.executor });
    // Nonces consumed by receipts of requests verified earlier (a bundle is read request by request).
    const used = ctx.carry('receipt-linkage.nonces', () => new Map<string, number>());
    for (const r of receipts) {
      const bad: Report = (code, message, partial) =>
        void out.push({
          ...entryFinding(r, code, message),
          ...(partial === true ? { partial: true as const } : {}),
        });
      const id = str(r.entry.payload['decision_id']);
      const jti = str(r.entry.payload['jti']);
      if (id === undefined || jti === undefined) {
        bad('RECEIPT_BINDING', 'the receipt names no decision_id or jti');
        continue;
      }
      const first = used.get(jti);
      if (first !== undefined)
        bad('NONCE_REUSED', `nonce ${jti} was already consumed by the receipt at entry ${first}`);
      else used.set(jti, r.entry.index);
      checkDecision(l, r, id, bad);
      const c = checkEnvelope(l, r, id, jti, bad);
      if (c !== undefined) checkWindow(l, r, c, bad);
    }
    return out;
  },
};
