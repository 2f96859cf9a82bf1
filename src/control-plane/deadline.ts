/** Bounded dependency calls for the Control Plane: the kernel's one {@link withDeadline} (FC-INV-4, OE-INV-003). */
export { withDeadline } from '../kernel/index.js';
export type { Settled } from '../kernel/index.js';
