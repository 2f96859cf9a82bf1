/**
 * Voiding an envelope whose call failed after issuance (SPEC §3 "an envelope is never a bearer
 * token at rest", docs/envelope.md "Voiding"). The Execution Layer owns the nonce store, so it
 * is the one that voids, when the Gate asks: the envelope must verify for the call (only a
 * genuine envelope can be voided), then its jti is recorded as voided by ONE atomic statement
 * racing consumption on the same key, and `envelope.voided` is ledgered (OE-INV-017, FC-INV-4).
 */
import { deny, envelopeSha256 } from '../kernel/index.js';
import type { DenialCode, Deny, EnvelopeClaims, JsonValue, VerifiedEnvelope } from '../kernel/index.js';
import type { ExecutionInput } from './executor.js';
import type { NonceStore } from './nonce-store.js';
import { callWithTimeout } from './timeout.js';

/** A request to void the envelope of a call that failed after issuance: the call, and why. */
export interface VoidInput extends ExecutionInput {
  /** The denial the caller answers with. */
  readonly code: DenialCode;
  /** Where the call failed (`execution`, `gateway`, ...). */
  readonly stage: string;
}

/**
 * What {@link Executor.void} answers: `voided` (the jti can never be consumed; `recorded` tells
 * whether `envelope.voided` was ledgered), `consumed` (a consumption won: the tool may have run),
 * or a deny when voiding could not be confirmed (the envelope's short TTL is then the last line).
 */
export type VoidOutcome =
  { readonly outcome: 'voided'; readonly recorded: boolean } | { readonly outcome: 'consumed' } | Deny;

/** What {@link createVoider} needs from the executor. */
export interface VoiderDeps {
  /** Verifies the envelope for the call exactly as a run would (public keys only). */
  readonly verify: (input: ExecutionInput) => VerifiedEnvelope | Deny;
  readonly nonces: NonceStore;
  readonly nonceMs: number;
  /** Appends `envelope.voided`; true once durable. */
  readonly record: (c: EnvelopeClaims, payload: Record<string, JsonValue>) => Promise<boolean>;
}

/** A bounded string, or ''. A declaration, not a module-level arrow, so its mutants are tested per call. */
function str(v: unknown): string {
  return typeof v === 'string' ? v.slice(0, 64) : '';
}

/** The void operation: never throws past its caller's edge (the executor catches). */
export function createVoider(deps: VoiderDeps): (input: VoidInput) => Promise<VoidOutcome> {
  return async (input) => {
    const verified = deps.verify(input);
    if (verified.outcome !== 'allow') return verified;
    const c = verified.claims;
    const voided = await callWithTimeout(
      () => deps.nonces.void({ jti: c.jti, tenant: c.tenant, exp: c.exp, decision_id: c.decision_id }),
      deps.nonceMs,
    );
    // A consumption won the race: its receipt (or the running tool's) tells the rest.
    if (voided.status === 'ok' && voided.value === 'consumed') return { outcome: 'consumed' };
    const confirmed = voided.status === 'ok' && voided.value === 'voided';
    const recorded = await deps.record(c, {
      decision_id: c.decision_id,
      jti: c.jti,
      envelope_sha256: envelopeSha256(input.envelope as string),
      code: input.code,
      stage: str(input.stage),
      reason: confirmed ? 'the call failed after issuance' : 'voiding could not be confirmed',
      nonce_voided: confirmed,
    });
    if (!confirmed) return deny('ERR_NONCE_STORE_UNAVAILABLE', 'voiding could not be confirmed');
    return { outcome: 'voided', recorded };
  };
}
