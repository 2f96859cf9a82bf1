/**
 * The one catalog of denial and failure codes, with the HTTP status each maps to.
 *
 * A deny is a result, not an exception (see {@link Deny}); {@link FailclosedError} exists for
 * hostile or unusable input detected deep inside a parser, and is turned into a deny at the
 * role's edge. Callers' own programming mistakes are plain `TypeError`s. Tests assert codes,
 * never message text. `docs/denial-codes.md` renders this table. (FC-INV-4, OE-INV-003)
 */

/** Every code failclosed can deny or fail with, with its HTTP status and a one-line meaning. */
export const DENIAL_CODES = {
  // Strict JSON (kernel/json): anything signed or hashed is parsed by the strict parser.
  ERR_JSON_SYNTAX: { status: 400, meaning: 'input is not well-formed JSON (RFC 8259)' },
  ERR_JSON_DUPLICATE_KEY: { status: 400, meaning: 'an object repeats a member name' },
  ERR_JSON_UNSAFE_NUMBER: {
    status: 400,
    meaning: 'a number is outside the exactly representable range or not finite',
  },
  ERR_JSON_LONE_SURROGATE: { status: 400, meaning: 'a string holds an unpaired UTF-16 surrogate' },
  ERR_JSON_INVALID_UTF8: { status: 400, meaning: 'input bytes are not valid UTF-8' },
  ERR_JSON_TOO_DEEP: { status: 400, meaning: 'nesting exceeds the depth limit' },
  ERR_JSON_TOO_LARGE: { status: 413, meaning: 'input exceeds the size limit' },

  // Keys.
  ERR_KEY_INVALID: { status: 400, meaning: 'a public key is malformed, small-order or non-canonical' },

  // Approval envelope verification (SPEC §3), in verification order.
  ERR_ENVELOPE_MISSING: { status: 403, meaning: 'no approval envelope was presented' },
  ERR_ENVELOPE_MALFORMED: { status: 403, meaning: 'the envelope is not a well-formed compact JWS' },
  ERR_ENVELOPE_ALG: { status: 403, meaning: 'the header alg is not exactly EdDSA' },
  ERR_ENVELOPE_TYP: { status: 403, meaning: 'the header typ is not the envelope type' },
  ERR_ENVELOPE_HEADER_FORBIDDEN: {
    status: 403,
    meaning: 'the header holds a forbidden or unknown parameter (crit, jku, x5u, jwk, b64, ...)',
  },
  ERR_ENVELOPE_KID_UNKNOWN: { status: 403, meaning: 'the kid names no pinned issuer key' },
  ERR_ENVELOPE_KID_REVOKED: { status: 403, meaning: 'the kid names a revoked issuer key' },
  ERR_ENVELOPE_SIGNATURE: { status: 403, meaning: 'the envelope signature does not verify' },
  ERR_ENVELOPE_NONCANONICAL: {
    status: 403,
    meaning:
      'the header or payload bytes are not the canonical encoding (duplicate keys, alternate spellings)',
  },
  ERR_ENVELOPE_CLAIMS: { status: 403, meaning: 'a claim is missing, unexpected or of the wrong type' },
  ERR_ENVELOPE_AUDIENCE: { status: 403, meaning: 'the envelope is for another executor' },
  ERR_ENVELOPE_NOT_YET_VALID: { status: 403, meaning: 'iat is in the future beyond clock tolerance' },
  ERR_ENVELOPE_EXPIRED: { status: 403, meaning: 'exp has passed beyond clock tolerance' },
  ERR_ENVELOPE_LIFETIME: { status: 403, meaning: 'exp - iat exceeds the maximum envelope lifetime' },
  ERR_ENVELOPE_TOOL_MISMATCH: { status: 403, meaning: 'the envelope is for another tool' },
  ERR_ENVELOPE_TENANT_MISMATCH: { status: 403, meaning: 'the envelope is for another tenant' },
  ERR_ENVELOPE_PARAMS_MISMATCH: { status: 403, meaning: 'the parameters differ from the approved ones' },
  ERR_ENVELOPE_POLICY_UNKNOWN: { status: 403, meaning: 'the envelope names an unknown policy bundle' },
  ERR_ENVELOPE_LEDGER_UNCONFIRMED: {
    status: 403,
    meaning: 'no confirmed ledger entry with the envelope’s index and hash',
  },
  ERR_ENVELOPE_NOT_ISSUED: {
    status: 403,
    meaning: 'the ledger holds no envelope.issued record for this jti and envelope digest',
  },
  ERR_ENVELOPE_DECISION_MISMATCH: {
    status: 403,
    meaning:
      'the ledger entry the envelope points at is not the allow (or fully approved) decision for the same decision, request, tool, tenant and parameters',
  },
  ERR_ENVELOPE_VOIDED: {
    status: 403,
    meaning: 'the envelope was voided after its call failed; it can never be consumed',
  },
  ERR_NONCE_REPLAYED: { status: 409, meaning: 'the envelope nonce was already consumed' },
  ERR_NONCE_STORE_UNAVAILABLE: { status: 503, meaning: 'the nonce store cannot confirm single use' },

  // Signed requests at the Gate (SPEC §2, FC-INV-3).
  ERR_REQUEST_MALFORMED: { status: 400, meaning: 'the request is not a well-formed signed request' },
  ERR_REQUEST_TOO_LARGE: { status: 413, meaning: 'the request exceeds a size limit' },
  ERR_CLIENT_UNKNOWN: { status: 401, meaning: 'the identity names no registered client' },
  ERR_CLIENT_REVOKED: { status: 401, meaning: 'the client key is revoked' },
  ERR_CLIENT_REGISTRY_UNAVAILABLE: { status: 503, meaning: 'the client registry did not answer in time' },
  ERR_REQUEST_SIGNATURE: { status: 401, meaning: 'the request signature does not verify' },
  ERR_REQUEST_TIMESTAMP: { status: 401, meaning: 'the request timestamp is outside the tolerance window' },
  ERR_REQUEST_REPLAYED: { status: 409, meaning: 'the request nonce or request id was already used' },
  ERR_REQUEST_TENANT: { status: 403, meaning: 'the client is not registered for the request tenant' },
  ERR_UNAUTHENTICATED: { status: 401, meaning: 'no valid credentials' },
  ERR_FORBIDDEN: {
    status: 403,
    meaning:
      "the operator's tenant scope does not cover the action: another tenant's, or a global one (kill switch, issuer keys, policy, operators, export); in the console, also a page or list outside the signed-in operator's tenants",
  },
  ERR_OIDC_INVALID: {
    status: 401,
    meaning:
      'a console OIDC sign-in is refused: state, issuer or nonce not those of this sign-in, the code refused by the issuer (replayed, wrong PKCE verifier), or the ID token does not verify (signature, issuer, audience, azp, expiry)',
  },
  ERR_OIDC_UNAVAILABLE: {
    status: 503,
    meaning:
      'the identity provider of a console OIDC sign-in did not answer (discovery, token endpoint or JWKS)',
  },
  ERR_SIGN_IN_RATE_LIMITED: {
    status: 429,
    meaning:
      'too many failed console sign-ins for this name or from this address within the window (console.sign_in_limit); refused before the attempt is tried',
  },
  ERR_TOKEN_INVALID: {
    status: 401,
    meaning:
      'the MCP bearer token does not verify: wrong issuer or audience, expired, unsigned or an algorithm not pinned, a bad signature, or claims missing',
  },
  ERR_ORIGIN_FORBIDDEN: {
    status: 403,
    meaning:
      'the MCP request names a Host or Origin outside the allowlist (DNS-rebinding protection), or a console request a foreign Host, or a console change is not same-origin (CSRF)',
  },
  ERR_OVERLOADED: {
    status: 503,
    meaning: 'the Gate is at its concurrency limit and shed the call before doing any work',
  },
  ERR_SHUTTING_DOWN: {
    status: 503,
    meaning:
      'the Gate is stopping: it accepts no new calls, and a call still running when the grace period ends gets this answer (recorded as request.abandoned)',
  },

  // Control Plane (SPEC §2 step 3, §6).
  ERR_CONTROL_PLANE_UNAVAILABLE: { status: 503, meaning: 'the Control Plane did not answer in time' },
  ERR_KILL_SWITCH: { status: 403, meaning: 'the kill switch is engaged' },
  ERR_TENANT_LOCKDOWN: { status: 403, meaning: 'the tenant is locked down' },
  ERR_SESSION_QUARANTINED: { status: 403, meaning: 'the agent session is quarantined' },
  ERR_CIRCUIT_OPEN: { status: 429, meaning: 'a circuit breaker is open' },
  ERR_TOOL_UNKNOWN: { status: 403, meaning: 'the tool is not in the active catalog' },
  ERR_MCP_NOT_OFFERED: {
    status: 403,
    meaning:
      'the MCP method is not under policy and not offered (resource subscriptions): refused and recorded',
  },
  ERR_PARAMS_SECRET: {
    status: 400,
    meaning: 'the parameters carry a secret value; pass secrets by reference (secret_ref)',
  },
  ERR_PARAMS_INVALID: { status: 400, meaning: 'the parameters fail the tool’s JSON Schema' },
  ERR_POLICY_DENY: { status: 403, meaning: 'the policy denied the call' },
  ERR_POLICY_ERROR: { status: 403, meaning: 'policy evaluation reported an error' },
  ERR_POLICY_UNAVAILABLE: {
    status: 503,
    meaning:
      'no verified active policy bundle is available, the policy evaluation did not answer within its deadline or its Cedar thread is down, or this gate cannot confirm that it follows the policy activations and issuer keys ledgered through the other gates on its database',
  },
  ERR_POLICY_BUNDLE_INVALID: { status: 403, meaning: 'a policy bundle is unknown, malformed or tampered' },
  ERR_APPROVAL_REQUIRED: { status: 403, meaning: 'the decision requires human approval' },
  ERR_APPROVAL_PENDING: { status: 202, meaning: 'approval is pending' },
  ERR_APPROVAL_REJECTED: { status: 403, meaning: 'a required approver rejected the call' },
  ERR_APPROVAL_EXPIRED: { status: 403, meaning: 'the approval window expired' },
  ERR_APPROVAL_INVALID: { status: 403, meaning: 'an approval is forged, reused, expired or not allowed' },
  ERR_BREAK_GLASS_DENIED: { status: 403, meaning: 'break-glass was requested without role, reason or TTL' },
  ERR_APPROVAL_UNKNOWN: {
    status: 404,
    meaning: 'no pending approval, break-glass grant or review has this id',
  },
  ERR_APPROVAL_SIGNATURE: {
    status: 403,
    meaning: 'the approval signature or approver token does not verify',
  },
  ERR_APPROVAL_SELF: {
    status: 403,
    meaning: 'the requester or its owner cannot approve or review its own call',
  },
  ERR_APPROVAL_DUPLICATE: { status: 409, meaning: 'this approver already decided on this request' },
  ERR_APPROVAL_REPLAYED: { status: 409, meaning: 'this signed approval was already used' },
  ERR_APPROVER_UNKNOWN: { status: 401, meaning: 'the approver is not registered or is revoked' },
  ERR_APPROVER_SESSION_REQUIRED: {
    status: 401,
    meaning: 'the approver is bound to an identity provider: only a console key+oidc session approves',
  },
  ERR_APPROVER_AGENT: { status: 403, meaning: 'an agent (client) identity can never approve' },
  ERR_APPROVER_ROLE: { status: 403, meaning: 'the approver holds none of the required roles' },
  ERR_APPROVER_TENANT: { status: 403, meaning: 'the approver is not scoped to the tenant of the call' },
  ERR_APPROVER_RATE_LIMITED: {
    status: 429,
    meaning: 'the approver reached the most approvals counted per window',
  },
  ERR_PREVIEW_UNAVAILABLE: { status: 403, meaning: 'the policy requires a preview the tool cannot produce' },

  // Audit System.
  ERR_LEDGER_UNAVAILABLE: { status: 503, meaning: 'the ledger could not durably confirm the write' },
  ERR_LEDGER_PAYLOAD_FIELD: { status: 500, meaning: 'a ledger payload holds a field not on its allowlist' },
  ERR_LEDGER_REQUEST_CLOSED: {
    status: 409,
    meaning:
      "the request already has an outcome record: a second one is not appended; or a keyless Gate's attempt was closed (recorded abandoned) before its envelope was issued: none is",
  },
  ERR_CHECKPOINT_MALFORMED: {
    status: 400,
    meaning: 'a signed note or checkpoint is malformed (C2SP signed-note, tlog-checkpoint)',
  },
  ERR_CHECKPOINT_SIGNATURE: {
    status: 403,
    meaning:
      'no trusted key for the expected log verified the signed note, or a trusted key’s signature failed',
  },

  // Execution Layer.
  ERR_EXECUTION_UNAVAILABLE: { status: 503, meaning: 'the Execution Layer did not answer in time' },
  ERR_TRUST_UNAVAILABLE: {
    status: 503,
    meaning:
      'a separate Execution Layer could not get the issuer keys fresh enough, or the policy bundle an envelope names, from the Gate',
  },
  ERR_QUEUE_UNAVAILABLE: {
    status: 503,
    meaning:
      'a background call could not be handed to its queue (none configured, the broker down or not confirming in time); its envelope was voided',
  },
  ERR_SCHEDULE_SLOT_MISSED: {
    status: 403,
    meaning:
      "a scheduled run was decided outside its slot (the clock passed the slot's end, or had not reached its start); nothing ran",
  },
  ERR_SCHEDULE_NOT_APPROVED: {
    status: 403,
    meaning:
      'a scheduled run names no issued schedule creation for its principal, tool and parameters, or its approvals no longer cover what the policy requires',
  },
  ERR_SCHEDULE_UNAVAILABLE: {
    status: 503,
    meaning: 'schedules are not configured, or the schedule store did not answer; nothing was scheduled',
  },
  ERR_ADAPTER_UNAVAILABLE: { status: 503, meaning: 'the tool adapter is missing or misconfigured' },
  ERR_SANDBOX_UNAVAILABLE: { status: 503, meaning: 'the sandbox could not be established' },
  ERR_EGRESS_DENIED: {
    status: 403,
    meaning:
      'a sandboxed tool tried to reach a destination its egress allowlist does not name (or a name that resolves to a non-public address), or an HTTP upstream MCP server is not on the allowlist, not at a public address, or answered a redirect; the call was ended',
  },
  ERR_EGRESS_LIMIT: {
    status: 502,
    meaning:
      'a sandboxed tool exceeded its egress byte or connection limit, or a call to an HTTP upstream MCP server its request limit; the call was ended',
  },
  ERR_UPSTREAM_TLS: {
    status: 502,
    meaning:
      'an https upstream (MCP server, HTTP tool, token endpoint) presented a certificate that does not verify: not issued by the trusted or pinned CA, not naming the host, expired or not yet valid, or the TLS handshake failed (a client certificate refused); nothing was sent (a failure after a verified handshake that may have let the request through is ERR_TOOL_FAILED)',
  },
  ERR_UPSTREAM_TOKEN: {
    status: 502,
    meaning:
      'the access token for an upstream could not be obtained by OAuth client credentials (token endpoint unreachable, refusing, or answering anything but a bearer token); nothing was sent to the upstream',
  },
  ERR_TOOL_TIMEOUT: { status: 504, meaning: 'the tool exceeded its time limit' },
  ERR_TOOL_OUTPUT_LIMIT: { status: 502, meaning: 'the tool exceeded its output limit' },
  ERR_TOOL_FAILED: { status: 502, meaning: 'the tool ran and failed' },
  ERR_CALL_CANCELLED: {
    status: 499,
    meaning:
      "the caller cancelled the call while it ran (an MCP client's notifications/cancelled, or its stream closed), or gave up on it (the Gate's execution deadline passed, its connection to the Execution Layer closed): the call was not started, or was ended",
  },
  ERR_TOOL_DEFINITION_CHANGED: {
    status: 502,
    meaning:
      'the upstream MCP server no longer offers the tool definition pinned in the policy bundle; nothing was called upstream',
  },

  ERR_ABANDONED: {
    status: 500,
    meaning:
      'the process stopped before the call had an outcome; recorded on restart (or when a stop’s grace period ran out), with whether its envelope was consumed',
  },
  ERR_INTERNAL: { status: 500, meaning: 'an unexpected failure; denied' },
} as const satisfies Record<string, { status: number; meaning: string }>;

/** A code from {@link DENIAL_CODES}. */
export type DenialCode = keyof typeof DENIAL_CODES;

/** A deny: the only shape a refusal takes on the enforcement path. */
export interface Deny {
  readonly outcome: 'deny';
  readonly code: DenialCode;
  readonly reason: string;
}

/** Builds a frozen {@link Deny}. */
export function deny(code: DenialCode, reason: string): Deny {
  return Object.freeze({ outcome: 'deny', code, reason });
}

/** True when `value` is a {@link Deny}. */
export function isDeny(value: unknown): value is Deny {
  return (
    typeof value === 'object' &&
    value !== null &&
    (value as { outcome?: unknown }).outcome === 'deny' &&
    typeof (value as { code?: unknown }).code === 'string'
  );
}

/** HTTP status for a code. */
export function statusOf(code: DenialCode): number {
  return DENIAL_CODES[code].status;
}

/** True when `code` is a known denial code. */
export function isDenialCode(code: unknown): code is DenialCode {
  return typeof code === 'string' && Object.prototype.hasOwnProperty.call(DENIAL_CODES, code);
}

/**
 * Error for hostile or unusable input found inside a parser or store. Caught at the role's
 * edge and turned into a {@link Deny} with the same code; `cause` never leaves the process.
 */
export class FailclosedError extends Error {
  readonly code: DenialCode;
  constructor(code: DenialCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FailclosedError';
    this.code = code;
  }
}

/** Turns any thrown value into a deny: a {@link FailclosedError} keeps its code, anything else is `fallback`. */
export function denyFromError(err: unknown, fallback: DenialCode = 'ERR_INTERNAL'): Deny {
  if (err instanceof FailclosedError) return deny(err.code, err.message);
  return deny(fallback, DENIAL_CODES[fallback].meaning);
}
