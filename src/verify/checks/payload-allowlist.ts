/** Every payload holds only the fields allowlisted for its type: no secrets slip in (OE-INV-009, L7 Secret Handling). */
import { disallowedPayloadFields } from '../entry-format.js';
import type { Finding, VerifyCheck } from '../types.js';
import { entryFinding, parsedViews } from './util.js';

/** Payload allowlist check. */
export const payloadAllowlistCheck: VerifyCheck = {
  id: 'payload-allowlist',
  title: 'every payload holds only allowlisted fields for its entry type',
  requirements: ['OE-INV-009', 'L7-secret-handling'],
  run: (ctx) => {
    const out: Finding[] = [];
    for (const v of parsedViews(ctx.views)) {
      const bad = disallowedPayloadFields(v.entry.type, v.entry.payload);
      if (bad.length > 0)
        out.push(
          entryFinding(
            v,
            'PAYLOAD_FIELD',
            `payload field(s) not allowed for ${v.entry.type}: ${bad.join(', ')}`,
          ),
        );
    }
    return out;
  },
};
