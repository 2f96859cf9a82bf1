/** Every entry_hash is the SHA-256 of the entry's RFC 8785 encoding without it (OE-INV-016, GEI audit chain). */
import { hexDigestEquals } from '../../kernel/index.js';
import type { Finding, VerifyCheck } from '../types.js';
import { entryFinding, parsedViews } from './util.js';

/** Entry hash check: any edited field is caught here, at the edited entry. */
export const entryHashCheck: VerifyCheck = {
  id: 'entry-hash',
  title: 'every entry hash matches the entry contents',
  requirements: ['OE-INV-016', 'GEI-audit-chain'],
  run: (ctx) => {
    const out: Finding[] = [];
    for (const v of parsedViews(ctx.views)) {
      if (!hexDigestEquals(ctx.computedHash(v), v.entry.entry_hash))
        out.push(
          entryFinding(v, 'ENTRY_HASH_MISMATCH', 'entry_hash does not match the entry contents (edited)'),
        );
    }
    return out;
  },
};
