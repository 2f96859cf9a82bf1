/**
 * The approver client (OE-INV-019/020, L7 Identity & Signing, L7 Break-glass): signs approval,
 * rejection, break-glass and review statements with a registered approver key and sends them to
 * the Gate's approval API (docs/approvals.md). It never holds an agent key: approvers and clients
 * are separate identities (OE-INV-002). Transport failures and uninterpretable answers are
 * reported as denies.
 */
import { exchangeOf, sendJson } from './http.js';
import {
  approvalSigningInput,
  breakGlassSigningInput,
  encodeBase64url,
  reviewSigningInput,
} from '../kernel/index.js';
import type {
  ApprovalStatement,
  ApprovalVerdict,
  BreakGlassStatement,
  Clock,
  JsonObject,
  JsonValue,
  ReviewStatement,
} from '../kernel/index.js';
import { importSigningKeyJwk, signEd25519 } from '../kernel/signing/index.js';
import type { SigningKey } from '../kernel/signing/index.js';

/** Signs an approval statement: base64url Ed25519 over `approvalSigningInput`. */
export function signApproval(key: SigningKey, statement: ApprovalStatement): string {
  return encodeBase64url(signEd25519(key, approvalSigningInput(statement)));
}

/** Signs a break-glass statement. */
export function signBreakGlass(key: SigningKey, statement: BreakGlassStatement): string {
  return encodeBase64url(signEd25519(key, breakGlassSigningInput(statement)));
}

/** Signs a review statement. */
export function signReview(key: SigningKey, statement: ReviewStatement): string {
  return encodeBase64url(signEd25519(key, reviewSigningInput(statement)));
}

/** Options of {@link createApproverClient}. */
export interface ApproverClientOptions {
  /** Gate base URL. */
  readonly url: string;
  /** The approver's registered name. */
  readonly name: string;
  /** The approver's signing key or private JWK. */
  readonly key: SigningKey | Readonly<Record<string, unknown>>;
  /** `Authorization` header for reading the approval API (operator or approver bearer token). */
  readonly authorization?: string;
  readonly now?: Clock;
  /** A `fetch` to send with; default `node:http` / `node:https` over their keep-alive agents. */
  readonly fetch?: typeof fetch;
}

/** An HTTP answer from the Gate (status 0: unreachable). */
export interface ApproverAnswer {
  readonly status: number;
  readonly body: JsonValue;
}

/** Break-glass request fields. */
export interface BreakGlassRequest {
  readonly tenant: string;
  readonly tool: string;
  readonly reason_category: string;
  readonly reason: string;
  readonly ttl_sec: number;
}

/** The approver client. */
export interface ApproverClient {
  list(): Promise<ApproverAnswer>;
  show(decisionId: string): Promise<ApproverAnswer>;
  /** Reads the pending approval, signs a statement bound to its decision, intent and preview, and submits it. */
  decide(decisionId: string, verdict: ApprovalVerdict, justification: string): Promise<ApproverAnswer>;
  breakGlass(request: BreakGlassRequest): Promise<ApproverAnswer>;
  reviews(): Promise<ApproverAnswer>;
  closeReview(reviewId: string, notes: string): Promise<ApproverAnswer>;
}

function isSigningKey(k: unknown): k is SigningKey {
  return typeof k === 'object' && k !== null && 'privateKey' in k && 'publicJwk' in k && 'kid' in k;
}

/** Creates an approver client. Throws `ERR_KEY_INVALID` for an unusable key. */
export function createApproverClient(options: ApproverClientOptions): ApproverClient {
  const key = isSigningKey(options.key) ? options.key : importSigningKeyJwk(options.key);
  const now = options.now ?? (() => Date.now());
  const exchange = exchangeOf(options.fetch);
  const stamp = (): string => new Date(now()).toISOString();

  const send = (method: 'GET' | 'POST', path: string, body?: JsonValue): Promise<ApproverAnswer> =>
    sendJson(exchange, options.url, method, path, options.authorization, body);

  const enc = encodeURIComponent;
  return Object.freeze({
    list: () => send('GET', '/v1/approvals'),
    show: (id: string) => send('GET', `/v1/approvals/${enc(id)}`),
    async decide(id: string, verdict: ApprovalVerdict, justification: string): Promise<ApproverAnswer> {
      const shown = await send('GET', `/v1/approvals/${enc(id)}`);
      const v = shown.body as JsonObject;
      if (shown.status !== 200 || typeof v['intent_sha256'] !== 'string') return shown;
      const statement: ApprovalStatement = {
        decision_id: id,
        intent_sha256: v['intent_sha256'],
        preview_sha256: typeof v['preview_sha256'] === 'string' ? v['preview_sha256'] : null,
        verdict,
        justification,
        timestamp: stamp(),
        approver: options.name,
      };
      return send('POST', `/v1/approvals/${enc(id)}/${verdict}`, {
        statement: { ...statement },
        signature: signApproval(key, statement),
      });
    },
    breakGlass(r: BreakGlassRequest): Promise<ApproverAnswer> {
      const statement: BreakGlassStatement = { approver: options.name, ...r, timestamp: stamp() };
      return send('POST', '/v1/break-glass', {
        statement: { ...statement },
        signature: signBreakGlass(key, statement),
      });
    },
    reviews: () => send('GET', '/v1/reviews'),
    closeReview(id: string, notes: string): Promise<ApproverAnswer> {
      const statement: ReviewStatement = { review_id: id, reviewer: options.name, notes, timestamp: stamp() };
      return send('POST', `/v1/reviews/${enc(id)}/close`, {
        statement: { ...statement },
        signature: signReview(key, statement),
      });
    },
  });
}
