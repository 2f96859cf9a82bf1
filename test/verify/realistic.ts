/**
 * Linkage-complete ledger content for verifier tests, without a running deployment: each trace is
 * what the Gate, Control Plane and Execution Layer write for one allowed call (a signed request
 * as evidence, gateway.accepted, decision, envelope.issued with a real signed envelope bound to
 * that decision, execution.receipt, gateway.completed), with test keys and the export options
 * (issuer and client keys, executor, policy bundle) that make it verify (SPEC §5, FC-INV-5/6).
 */
import {
  canonicalize,
  computeParamsSha256,
  envelopeSha256,
  issuedPayload,
  sha256Hex,
  type EnvelopeClaims,
  type JsonObject,
  type JsonValue,
} from '../../src/kernel/index.js';
import { signEnvelope, signingKeyFromSeed, type SigningKey } from '../../src/kernel/signing/index.js';
import { buildSignedRequest, type SignedRequestBody } from '../../src/client/request.js';
import type { AppendReceipt, ExportOptions, Ledger } from '../../src/ledger/index.js';

/** The issuer key of the synthetic Control Plane (a test key: never use it for anything real). */
export const ISSUER_KEY: SigningKey = signingKeyFromSeed(Buffer.alloc(32, 21));
/** The signing key of the synthetic client `agent-1`. */
export const CLIENT_KEY: SigningKey = signingKeyFromSeed(Buffer.alloc(32, 22));
export const CLIENT = 'agent-1';
export const TENANT = 'acme';
export const AUDIENCE = 'test-executor';
/** A stand-in policy bundle document and its hash (SHA-256 of its canonical bytes). */
export const POLICY_DOC: JsonObject = { name: 'test-policy', tools: [] };
export const POLICY_HASH = sha256Hex(canonicalize(POLICY_DOC));
/** `iat` of every synthetic envelope: the stepping clock's start (2025-01-01T00:00:00Z). */
const IAT = Date.UTC(2025, 0, 1) / 1000;

const GATE = { id: CLIENT, role: 'gate' } as const;
const CONTROL_PLANE = { id: 'control-plane', role: 'control-plane' } as const;
const EXECUTOR = { id: AUDIENCE, role: 'executor' } as const;

/** Export options that let the verifier check the synthetic traces: keys, client owner, executor, policy. */
export const LINKAGE_EXPORT: Pick<ExportOptions, 'publicKeys' | 'executor' | 'policyBundle'> = {
  publicKeys: {
    issuer: { keys: [{ ...ISSUER_KEY.publicJwk, kid: ISSUER_KEY.kid }], revoked: [] },
    clients: { keys: [{ ...CLIENT_KEY.publicJwk, kid: CLIENT_KEY.kid }], revoked: [] },
    clientIdentities: [{ kid: CLIENT_KEY.kid, identity: CLIENT, tenant: TENANT }],
  },
  executor: { audience: AUDIENCE, clockToleranceSec: 30, maxLifetimeSec: 300 },
  policyBundle: (hash) => (hash === POLICY_HASH ? POLICY_DOC : undefined),
};

/** The entries one trace appends, in order. */
export const TRACE_LENGTH = 5;

/**
 * Appends one allowed, executed call `n` (five entries; the request is stored as evidence first),
 * its request signed by `key` (default `agent-1`'s registered key).
 */
export async function appendTrace(
  ledger: Ledger,
  n: number,
  key: SigningKey = CLIENT_KEY,
): Promise<AppendReceipt[]> {
  const request = requestOf(n, key);
  const parameters = request.parameters;
  const request_sha256 = await ledger.putEvidence(Buffer.from(JSON.stringify(request)), 'application/json');
  const trace_id = sha256Hex(canonicalize(request as unknown as JsonValue)).slice(0, 32);
  const params_sha256 = computeParamsSha256(parameters);
  const result_sha256 = sha256Hex(canonicalize(parameters));
  const base = { trace_id, request_id: request.request_id, tenant: TENANT };
  const decision_id = `d-${n}`;
  const jti = `j-${n}`;
  const out: AppendReceipt[] = [];
  out.push(
    await ledger.append({
      ...base,
      type: 'gateway.accepted',
      actor: GATE,
      payload: { request_sha256, tool: 'echo', client: CLIENT, session: null, auth_method: 'signature' },
    }),
  );
  const decision = await ledger.append({
    ...base,
    type: 'decision',
    actor: CONTROL_PLANE,
    payload: {
      decision_id,
      outcome: 'allow',
      code: null,
      policy_bundle: POLICY_HASH,
      constitution_version: 'test',
      rules_fired: ['p1'],
      rationale: 'allowed',
      risk: 'low',
      obligations: null,
      params_sha256,
      tool: 'echo',
      client: CLIENT,
      session: null,
      request_sha256,
    },
  });
  out.push(decision);
  const ledgerRef = { index: decision.index, entry_hash: decision.entry_hash };
  const claims: EnvelopeClaims = {
    iss: 'control-plane',
    aud: AUDIENCE,
    sub: CLIENT,
    tenant: TENANT,
    tool: 'echo',
    params_sha256,
    jti,
    iat: IAT,
    exp: IAT + 60,
    decision_id,
    request_id: request.request_id,
    trace_id,
    policy_bundle: POLICY_HASH,
    ledger: ledgerRef,
    approvals: [],
    constraints: {
      timeout_ms: 1000,
      max_output_bytes: 65536,
      memory_bytes: 67108864,
      network: false,
      egress: [],
      fs_read: [],
      fs_write: [],
      max_cost_cents: null,
    },
  };
  const envelope = signEnvelope(claims, ISSUER_KEY);
  const envelope_sha256 = envelopeSha256(envelope);
  // Claims and digest at issuance; the JWS only in the receipt of its consumption.
  out.push(
    await ledger.append({
      ...base,
      type: 'envelope.issued',
      actor: CONTROL_PLANE,
      payload: issuedPayload(claims, ISSUER_KEY.kid, envelope_sha256),
    }),
  );
  out.push(
    await ledger.append({
      ...base,
      type: 'execution.receipt',
      actor: EXECUTOR,
      payload: {
        decision_id,
        jti,
        params_sha256,
        tool: 'echo',
        decision_ref: ledgerRef,
        duration_ms: 1,
        status: 'succeeded',
        adapter: 'builtin',
        result_sha256,
        redactions: 0,
        envelope,
        envelope_sha256,
      },
    }),
  );
  out.push(
    await ledger.append({
      ...base,
      type: 'gateway.completed',
      actor: GATE,
      payload: { decision_id, outcome: 'executed', tool: 'echo', client: CLIENT, result_sha256 },
    }),
  );
  return out;
}

/**
 * Appends the ledgered registration of a client request key, as `clients add` (and `init`, for
 * the demo client) writes it (src/embedded/admin.ts): with a pinned ledger key it is the only
 * source of client keys the verifier accepts (FC-INV-3). Default: `agent-1`'s key.
 */
export async function appendRegistration(
  ledger: Ledger,
  key: SigningKey = CLIENT_KEY,
  client: string = CLIENT,
): Promise<AppendReceipt> {
  const id = `reg-${key.kid}`;
  return ledger.append({
    type: 'admin.client_registered',
    trace_id: id,
    request_id: id,
    tenant: TENANT,
    actor: { id: 'operator', role: 'operator' },
    payload: {
      client,
      kid: key.kid,
      key_use: 'request',
      roles: [],
      public_jwk: { ...key.publicJwk },
      auth_method: 'signature',
      owner: 'operator',
    },
  });
}

/**
 * Appends `n` entries: from a fresh ledger (`firstTrace` 0) the client's registration first,
 * then whole traces while at least {@link TRACE_LENGTH} remain, then `audit.read` records.
 */
export async function appendRealistic(ledger: Ledger, n: number, firstTrace = 0): Promise<void> {
  let left = n;
  let t = firstTrace;
  if (firstTrace === 0 && left > 0) {
    await appendRegistration(ledger);
    left--;
  }
  while (left >= TRACE_LENGTH) {
    await appendTrace(ledger, t++);
    left -= TRACE_LENGTH;
  }
  for (; left > 0; left--) {
    await ledger.append({
      type: 'audit.read',
      trace_id: '',
      request_id: '',
      tenant: TENANT,
      actor: { id: 'auditor-1', role: 'auditor' },
      payload: { scope: 'evidence', reason: 'review' },
    });
  }
}

/** The signed request of synthetic call `n` (deterministic), signed by `key`. */
export function requestOf(n: number, key: SigningKey = CLIENT_KEY): SignedRequestBody {
  return buildSignedRequest({
    key,
    identity: CLIENT,
    tenant: TENANT,
    action: 'echo',
    parameters: { message: `hello ${n}` },
    timestampMs: IAT * 1000,
    requestId: `r-${n}`,
    nonce: Buffer.alloc(16, n % 256).toString('base64url'),
  });
}

/** Trace id of synthetic call `n`, as the Gate derives it (for trace-scoped exports). */
export function traceIdOf(n: number): string {
  return sha256Hex(canonicalize(requestOf(n) as unknown as JsonValue)).slice(0, 32);
}
