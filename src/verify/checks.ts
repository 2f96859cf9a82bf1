/**
 * The verifier's checklist, in order. Add a check by adding a file under `checks/` and a line
 * here; the report, `--invariant` filtering and exit codes need no change. Slots for later
 * checks: envelope binding (SPEC §3), execution receipts with a prior allow and a unique nonce,
 * trace linkage (FC-INV-6), attributable outcomes (FC-INV-5), approvals (OE-INV-019/020).
 */
import { approvalsCheck } from './checks/approvals.js';
import { chainContinuityCheck } from './checks/chain-continuity.js';
import { checkpointSignatureCheck } from './checks/checkpoint-signature.js';
import { consistencyCheck } from './checks/consistency.js';
import { entryFormatCheck } from './checks/entry-format.js';
import { entryHashCheck } from './checks/entry-hash.js';
import { evidenceCheck } from './checks/evidence.js';
import { inclusionProofsCheck } from './checks/inclusion-proofs.js';
import { merkleRootCheck } from './checks/merkle-root.js';
import { payloadAllowlistCheck } from './checks/payload-allowlist.js';
import type { VerifyCheck } from './types.js';

/** Every check, run in this order. */
export const VERIFY_CHECKS: readonly VerifyCheck[] = [
  entryFormatCheck,
  entryHashCheck,
  chainContinuityCheck,
  payloadAllowlistCheck,
  checkpointSignatureCheck,
  merkleRootCheck,
  inclusionProofsCheck,
  consistencyCheck,
  evidenceCheck,
  approvalsCheck,
];
