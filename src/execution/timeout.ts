/** Bounded dependency calls for the Execution Layer: the kernel's one deadline helper (FC-INV-4, OE-INV-003). */
export {
  withDeadline as callWithTimeout,
  withCancellableDeadline as callWithCancellableTimeout,
} from '../kernel/index.js';
export type { Settled as Bounded } from '../kernel/index.js';
