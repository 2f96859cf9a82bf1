/** Every entry has the ledger entry shape: ten members, typed, a known type (OE-INV-016, OE-INV-022). */
import type { VerifyCheck } from '../types.js';
import { entryFinding } from './util.js';

/** Entry shape check. */
export const entryFormatCheck: VerifyCheck = {
  id: 'entry-format',
  title: 'every entry has the ledger entry format and a known type',
  requirements: ['OE-INV-016', 'OE-INV-022'],
  run: (ctx) =>
    ctx.views
      .filter((v) => v.problem !== undefined)
      .map((v) => entryFinding(v, 'ENTRY_MALFORMED', v.problem ?? 'malformed')),
};
