/**
 * Evidence blobs (raw signed requests and other exports referenced by hash from entries) hash to
 * their keys, and every `gateway.accepted` entry's `request_sha256` is present: the raw signed
 * request is part of the bundle (SPEC §5 FC required exports, OE-INV-016, OE-INV-022).
 */
import { hexDigestEquals, sha256Hex } from '../../kernel/index.js';
import type { Finding, VerifyCheck } from '../types.js';
import { entryFinding, isHex64, parsedViews } from './util.js';

const B64_STD = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Evidence check. */
export const evidenceCheck: VerifyCheck = {
  id: 'evidence',
  title: 'evidence blobs match their hashes and every referenced raw request is present',
  requirements: ['OE-INV-016', 'OE-INV-022'],
  run: (ctx) => {
    const out: Finding[] = [];
    for (const [sha, blob] of Object.entries(ctx.bundle.evidence)) {
      const { media_type: mt, body_b64: b64 } = (
        typeof blob === 'object' && blob !== null && !Array.isArray(blob) ? blob : {}
      ) as { media_type?: unknown; body_b64?: unknown };
      // Attacker-controlled: strict base64 so one body has one spelling.
      const body = typeof b64 === 'string' && B64_STD.test(b64) ? Buffer.from(b64, 'base64') : undefined;
      const ok =
        isHex64(sha) &&
        typeof mt === 'string' &&
        body !== undefined &&
        body.toString('base64') === b64 &&
        hexDigestEquals(sha256Hex(body), sha);
      if (!ok)
        out.push({
          code: 'EVIDENCE_HASH',
          message: `evidence ${sha.slice(0, 16)}… is malformed or does not hash to its key`,
        });
    }
    for (const v of parsedViews(ctx.views)) {
      const ref = v.entry.payload['request_sha256'];
      if (v.entry.type === 'gateway.accepted' && typeof ref === 'string' && !(ref in ctx.bundle.evidence))
        out.push(
          entryFinding(
            v,
            'EVIDENCE_MISSING',
            `the raw request ${ref.slice(0, 16)}… is not in the bundle evidence`,
          ),
        );
    }
    return out;
  },
};
