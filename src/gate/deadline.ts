/** Bounded calls for the Gate: the kernel's one {@link withDeadline} (FC-INV-4, SPEC §7 scenario 5). */
export { withDeadline, withCancellableDeadline } from '../kernel/index.js';
export type { Settled } from '../kernel/index.js';
