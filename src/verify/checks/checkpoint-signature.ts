/**
 * The checkpoint is a C2SP tlog-checkpoint note for this ledger's origin, signed by the ledger
 * key: pinned with `--trusted-key`, else the bundle's own key (and the report says it is not
 * pinned). The bundle's vkey and JWK must name the same key. (L7 ledger protection, OE-INV-016)
 */
import type { Finding, VerifyCheck } from '../types.js';

/** Checkpoint signature check. */
export const checkpointSignatureCheck: VerifyCheck = {
  id: 'checkpoint-signature',
  title: 'the checkpoint is signed by the ledger key for this origin',
  requirements: ['L7-ledger-protection', 'OE-INV-016'],
  unit: 'bundle',
  run: (ctx) => {
    const out: Finding[] = [];
    if (ctx.key.problem !== undefined) out.push(ctx.key.problem);
    if (ctx.checkpoint.problem !== undefined) out.push(ctx.checkpoint.problem);
    return out;
  },
};
