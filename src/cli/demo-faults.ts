/**
 * The demo's dependency outages (SPEC §7 scenarios 5, 8, 9): switches that make the Control
 * Plane, the nonce store or the ledger of the demo's own throwaway instance reject, through the
 * composition's port decorators. A switch can only make a dependency fail, never answer for it;
 * nothing outside the demo command composes them.
 */
import type { CoreDecorators } from '../embedded/index.js';

/** The demo's outage switches, read on every call. */
export interface DemoOutages {
  controlPlane: boolean;
  nonceStore: boolean;
  ledger: boolean;
}

const down = (what: string): Promise<never> => Promise.reject(new Error(`${what} down (demo outage)`));

/** Switches (all off) and the decorators that honour them. */
export function demoOutages(): { readonly outages: DemoOutages; readonly decorate: CoreDecorators } {
  const outages: DemoOutages = { controlPlane: false, nonceStore: false, ledger: false };
  return {
    outages,
    decorate: {
      controlPlane: (port) => ({
        ...port,
        decide: (req, options) => (outages.controlPlane ? down('control plane') : port.decide(req, options)),
      }),
      nonceStore: (store) => ({
        consume: (input) => (outages.nonceStore ? down('nonce store') : store.consume(input)),
        void: (input) => (outages.nonceStore ? down('nonce store') : store.void(input)),
        prune: (input) => store.prune(input),
        close: () => store.close(),
      }),
      ledgerPort: (port) => ({
        append: (e) => (outages.ledger ? down('ledger') : port.append(e)),
        putEvidence: (b, t) => (outages.ledger ? down('ledger') : port.putEvidence(b, t)),
        readEnvelopeContext: (q) => (outages.ledger ? down('ledger') : port.readEnvelopeContext(q)),
      }),
    },
  };
}
