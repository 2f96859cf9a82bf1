/**
 * A consistent forger for verifier tests: after entries were removed, inserted or edited, it
 * renumbers the entries, re-links and re-hashes the chain, carries every moved decision's new
 * index and hash into the envelope claims recorded at issuance that name it, re-signs the
 * consumed envelope in the receipt with the issuer key the forger holds (both digests follow),
 * carries it into receipts' `decision_ref`, and re-signs the checkpoint with a test ledger key. What is
 * left for the verifier to catch is exactly the linkage the forgery broke (SPEC §5), once the test
 * ledger key is pinned with `--trusted-key` / `trustedKey`.
 */
import { createPublicKey } from 'node:crypto';
import {
  claimsOfIssued,
  encodeBase64url,
  envelopeSha256,
  isEnvelopeClaims,
  publicKeyFromKeyObject,
  vkeyFor,
} from '../../src/kernel/index.js';
import {
  noteSignerFor,
  signEnvelope,
  signingKeyFromSeed,
  type SigningKey,
} from '../../src/kernel/signing/index.js';
import { computeEntryHash } from '../../src/ledger/index.js';
import { resign, type MutableBundle } from './helpers.js';

/** The forger's ledger key for `origin`: its signer, vkey (pin it) and JWK. */
export function forgerLedgerKey(origin: string): { sign: (b: MutableBundle) => void; vkey: string } {
  const key = signingKeyFromSeed(Buffer.alloc(32, 77));
  const pub = createPublicKey(key.privateKey);
  const vkey = vkeyFor(origin, pub);
  return {
    vkey,
    sign: (b) =>
      resign(b, noteSignerFor(origin, key.privateKey), vkey, { ...publicKeyFromKeyObject(pub).jwk }),
  };
}

const refKey = (r: { index?: unknown; entry_hash?: unknown } | undefined): string =>
  `${String(r?.index)}:${String(r?.entry_hash)}`;

function claimsOf(envelope: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(envelope.split('.')[1] ?? '', 'base64url').toString('utf8')) as Record<
    string,
    unknown
  >;
}

/**
 * Rebuilds a complete bundle's ledger consistently after a tamper (see the module comment).
 * Envelopes whose decision did not move keep their exact bytes, so a broken or foreign
 * signature stays as the tamper left it.
 */
export function relink(b: MutableBundle, issuer: SigningKey): { vkey: string } {
  const entries = b['entries'] as MutableBundle[];
  const moved = new Map<string, { index: number; entry_hash: string }>();
  const resigned = new Map<string, { envelope: string; digest: string }>();
  entries.forEach((e, i) => {
    const old = { index: e['index'] as number, entry_hash: e['entry_hash'] as string };
    e['index'] = i;
    e['prev_hash'] = i === 0 ? '0'.repeat(64) : entries[i - 1]!['entry_hash'];
    const p = e['payload'] as MutableBundle;
    if (e['type'] === 'envelope.issued') {
      const next = moved.get(refKey(p['ledger_ref']));
      if (next !== undefined) {
        p['ledger_ref'] = next;
        const claims = claimsOfIssued(e as never);
        if (claims === undefined) throw new TypeError('not envelope claims');
        const envelope = signEnvelope(claims, issuer);
        p['envelope_sha256'] = envelopeSha256(envelope);
        resigned.set(claims.jti, { envelope, digest: p['envelope_sha256'] as string });
      }
    }
    if (e['type'] === 'execution.receipt') {
      const next = moved.get(refKey(p['decision_ref']));
      if (next !== undefined) p['decision_ref'] = next;
      const swapped = resigned.get(p['jti'] as string);
      if (swapped !== undefined) {
        p['envelope'] = swapped.envelope;
        p['envelope_sha256'] = swapped.digest;
      }
    }
    const { entry_hash: _drop, ...body } = e;
    e['entry_hash'] = computeEntryHash(body as never);
    if (e['type'] === 'decision' && (old.index !== i || old.entry_hash !== e['entry_hash']))
      moved.set(refKey(old), { index: i, entry_hash: e['entry_hash'] as string });
  });
  b['scope'] = { kind: 'range', from: 0, to: entries.length - 1 };
  const key = forgerLedgerKey(b['origin'] as string);
  key.sign(b);
  return { vkey: key.vkey };
}

/** Replaces an envelope's claims and re-signs it with `key` (a forger's key, unknown to the bundle). */
export function resignEnvelope(
  envelope: string,
  key: SigningKey,
  change: (claims: Record<string, unknown>) => void = () => undefined,
): string {
  const claims = claimsOf(envelope);
  change(claims);
  if (!isEnvelopeClaims(claims)) throw new TypeError('not envelope claims');
  return signEnvelope(claims, key);
}

/**
 * Puts `envelope` in place of the consumed envelope of the receipt at `receiptAt` and makes
 * both digests (the receipt's and its `envelope.issued` record's) name it: a forger who can
 * re-hash the chain.
 */
export function swapConsumed(b: MutableBundle, receiptAt: number, envelope: string): void {
  const entries = b['entries'] as MutableBundle[];
  const receipt = entries[receiptAt]!['payload'] as MutableBundle;
  const digest = envelopeSha256(envelope);
  receipt['envelope'] = envelope;
  receipt['envelope_sha256'] = digest;
  for (const e of entries) {
    const p = e['payload'] as MutableBundle;
    if (e['type'] === 'envelope.issued' && p['jti'] === receipt['jti']) p['envelope_sha256'] = digest;
  }
}

/** Flips one character of an envelope's signature segment (a broken signature, same length). */
export function breakSignature(envelope: string): string {
  const [h, p, s] = envelope.split('.');
  const sig = Buffer.from(s ?? '', 'base64url');
  sig[10] = (sig[10] ?? 0) ^ 0x01;
  return `${h}.${p}.${encodeBase64url(sig)}`;
}
