/**
 * The identity-provider binding of an approver, enforced by the approval service itself
 * (OE-INV-020, L7 Identity & Signing): an approver confirmed from an invitation bound to an OIDC
 * issuer and subject (`approvers invite --oidc-subject`, docs/console.md "OIDC sign-in") is heard
 * only through the console, with proof of a live `key+oidc` session of that issuer and subject.
 * A statement signed by such an approver's device key and posted anywhere else (the approval
 * API, break-glass, reviews) is refused `ERR_APPROVER_SESSION_REQUIRED`, so an account disabled at
 * the identity provider approves no more, whoever holds the device.
 */
import { deny } from '../../kernel/index.js';
import type { Deny, JsonObject } from '../../kernel/index.js';

/** The issuer and subject an approver is bound to. */
export interface OidcBinding {
  readonly issuer: string;
  readonly subject: string;
}

/**
 * Proof of a live console session, passed in-process by the console only (never read from a
 * request body): its method, the issuer and subject it proved, and when the
 * session started.
 */
export interface SessionProof {
  readonly method: 'key+oidc';
  readonly issuer: string;
  readonly subject: string;
  /** ISO 8601: when the session signed in (an OIDC step-up keeps the time of the first sign-in). */
  readonly session_started_at: string;
}

/**
 * Where the approval service reads an approver's binding: undefined when the approver is not
 * bound. A rejection fails the operation (fail closed: nothing counts).
 */
export type BindingOf = (approver: string) => Promise<OidcBinding | undefined>;

/**
 * Checks `proof` against `approver`'s binding: the evidence member to record (`session`), `{}`
 * for an approver without a binding, or `ERR_APPROVER_SESSION_REQUIRED`.
 */
export async function sessionCheck(
  bindingOf: BindingOf | undefined,
  approver: string,
  proof: SessionProof | undefined,
): Promise<{ readonly session?: JsonObject } | Deny> {
  const binding = bindingOf === undefined ? undefined : await bindingOf(approver);
  if (binding === undefined) return {};
  if (proof?.method !== 'key+oidc' || proof.issuer !== binding.issuer || proof.subject !== binding.subject)
    return deny(
      'ERR_APPROVER_SESSION_REQUIRED',
      'the approver is bound to an identity provider: approve in the console, signed in with it',
    );
  return {
    session: {
      method: proof.method,
      issuer: proof.issuer,
      subject: proof.subject,
      session_started_at: proof.session_started_at,
    },
  };
}
