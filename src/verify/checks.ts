/**
 * The verifier's checklist, in order. Add a check by adding a file under `checks/` and a line
 * here; the report, `--invariant` filtering and exit codes need no change. The linkage checks
 * (envelope binding SPEC §3, receipts OE-INV-015, traces FC-INV-6, outcomes FC-INV-5) share the
 * index in `linkage.ts`.
 */
import { approvalsCheck } from './checks/approvals.js';
import { attributableOutcomeCheck } from './checks/attributable-outcome.js';
import { chainContinuityCheck } from './checks/chain-continuity.js';
import { checkpointSignatureCheck } from './checks/checkpoint-signature.js';
import { consistencyCheck } from './checks/consistency.js';
import { entryFormatCheck } from './checks/entry-format.js';
import { entryHashCheck } from './checks/entry-hash.js';
import { envelopeBindingCheck } from './checks/envelope-binding.js';
import { evidenceCheck } from './checks/evidence.js';
import { inclusionProofsCheck } from './checks/inclusion-proofs.js';
import { interfaceInventoryCheck } from './checks/interface-inventory.js';
import { merkleRootCheck } from './checks/merkle-root.js';
import { payloadAllowlistCheck } from './checks/payload-allowlist.js';
import { receiptLinkageCheck } from './checks/receipt-linkage.js';
import { traceLinkageCheck } from './checks/trace-linkage.js';
import { trustRootsCheck } from './checks/trust-roots.js';
import { schedulesCheck } from './checks/schedules.js';
import type { VerifyCheck } from './types.js';

/** Every check, run in this order. */
export const VERIFY_CHECKS: readonly VerifyCheck[] = [
  entryFormatCheck,
  entryHashCheck,
  chainContinuityCheck,
  payloadAllowlistCheck,
  checkpointSignatureCheck,
  trustRootsCheck,
  merkleRootCheck,
  inclusionProofsCheck,
  consistencyCheck,
  evidenceCheck,
  approvalsCheck,
  envelopeBindingCheck,
  receiptLinkageCheck,
  traceLinkageCheck,
  attributableOutcomeCheck,
  interfaceInventoryCheck,
  schedulesCheck,
];
