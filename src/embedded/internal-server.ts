/**
 * The Control Plane process's internal listener for a separate Execution Layer (`failclosed serve
 * executor`, docs/deployment.md "Separate Execution Layer"; FC-INV-6, L7 mutual TLS between
 * roles). HTTPS with mutual TLS, serving the Control Plane's own certificate (`tls.control_plane`,
 * which must name the `control-plane` role: its peers accept no other), admitting only peers whose
 * certificate names the `executor` role (`src/transport/server.ts`), and with `internal_gates`
 * also the `gate` role of separate Gates (`failclosed serve gate`), each role to its own routes
 * only (the Gates' are in `gate-routes.ts`); every other peer is refused at or right after the
 * handshake and recorded (`transport.refused`).
 *
 * What it serves is what the Execution Layer needs and may have, nothing more:
 * - `GET /v1/internal/issuer-jwks`: the issuer's PUBLIC keys and revocations (never a private key);
 * - `GET /v1/internal/bundles/<sha256>`: a policy bundle's stored bytes by hash, only when the
 *   bundle store verifies it (the executor hashes and compiles them again itself);
 * - `POST /v1/internal/ledger/envelope-context`: the records an envelope is checked against;
 * - `POST /v1/internal/ledger/append`: the Execution Layer's own entries (`execution.receipt`,
 *   `denial`, `envelope.voided`, `transport.refused`), written by the one ledger writer of this
 *   process with the actor role `executor` whatever the body says.
 * Bodies are untrusted input (strict JSON, size bounds); every failure answers a deny code, a
 * ledger failure `ERR_LEDGER_UNAVAILABLE` (the executor then runs nothing).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FailclosedError, isDeny, withDeadline } from '../kernel/index.js';
import type { DenialCode, JsonObject, JsonValue } from '../kernel/index.js';
import type { BundleStore } from '../control-plane/index.js';
import type { EntryType } from '../ledger/index.js';
import { createMtlsServer } from '../transport/index.js';
import { answerDeny, answerJson, readJsonBody } from './json-answer.js';
import type { MtlsServer, PeerIdentity, Refusal, TlsFiles } from '../transport/index.js';
import type { LedgerPort } from './ports.js';
import { handleGateRoute, type GateRoutes } from './gate-routes.js';

const MAX_BODY = 256 * 1024;
const HASH_RE = /^[0-9a-f]{64}$/;
/** The entry types a separate Execution Layer may append (and nothing else). */
export const EXECUTOR_ENTRY_TYPES: readonly EntryType[] = [
  'execution.receipt',
  'denial',
  'envelope.voided',
  'transport.refused',
];

/** Options of {@link createInternalServer}. */
export interface InternalServerOptions {
  readonly host: string;
  readonly port: number;
  /**
   * The Control Plane's certificate (naming the `control-plane` role, checked at start and at
   * every reload), key, CA and revocations.
   */
  readonly files: TlsFiles;
  readonly now?: () => number;
  readonly onRefused?: (r: Refusal) => void;
  /** The issuer's published JWKS (public keys and revocations). */
  readonly issuerJwks: () => unknown;
  readonly bundles: BundleStore;
  /** Where verified bundle files are (`<dir>/<hash>.json`). */
  readonly bundleDir: string;
  readonly ledger: LedgerPort;
  /** Deadline (ms) of one ledger call; default 2000. */
  readonly ledgerMs?: number;
  /**
   * Present: separate Gate processes (`failclosed serve gate`, role `gate`) are admitted too, to
   * the Control Plane's and the ledger's routes of `gate-routes.ts` and to nothing else.
   */
  readonly gates?: GateRoutes;
}

const isObject = (v: JsonValue | undefined): v is JsonObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const boundedString = (v: JsonValue | undefined, max: number): string | undefined =>
  typeof v === 'string' && v.length <= max ? v : undefined;

/** The executor's entry from an untrusted body, its actor role pinned to `executor`; undefined if malformed. */
function entryOf(v: JsonValue) {
  if (!isObject(v)) return undefined;
  const type = v['type'];
  if (typeof type !== 'string' || !(EXECUTOR_ENTRY_TYPES as readonly string[]).includes(type))
    return undefined;
  const trace_id = boundedString(v['trace_id'], 256);
  const request_id = boundedString(v['request_id'], 256);
  const tenant = boundedString(v['tenant'], 256);
  const actor = v['actor'];
  const payload = v['payload'];
  if (trace_id === undefined || request_id === undefined || tenant === undefined) return undefined;
  if (!isObject(actor) || !isObject(payload)) return undefined;
  const id = boundedString(actor['id'], 256);
  if (id === undefined) return undefined;
  return {
    type: type as EntryType,
    trace_id,
    request_id,
    tenant,
    actor: { id, role: 'executor' },
    payload,
  };
}

function contextQueryOf(v: JsonValue) {
  if (!isObject(v)) return undefined;
  const index = v['index'];
  const jti = boundedString(v['jti'], 256);
  const decision_id = boundedString(v['decision_id'], 256);
  if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0) return undefined;
  if (jti === undefined || decision_id === undefined) return undefined;
  return { index, jti, decision_id };
}

/** Starts the internal listener; see the module comment. */
export async function createInternalServer(options: InternalServerOptions): Promise<MtlsServer> {
  const ledgerMs = options.ledgerMs ?? 2000;
  const handler = (req: IncomingMessage, res: ServerResponse, peer: PeerIdentity): void => {
    const send = (status: number, body: JsonValue | Buffer): void => answerJson(res, status, body);
    const refuse = (code: DenialCode, reason: string): void => answerDeny(res, code, reason);
    const handle = async (): Promise<void> => {
      const url = req.url ?? '';
      // Each role reaches its own routes only: a Gate never appends an Execution Layer's entries.
      if (peer.role === 'gate') {
        if (options.gates === undefined) {
          req.resume();
          return send(404, { error: 'not_found' });
        }
        // Gone: the connection closed before this answer was written in full.
        const gone = new AbortController();
        res.once('close', () => {
          if (!res.writableFinished) gone.abort();
        });
        const a = await handleGateRoute(options.gates, req, peer, gone.signal);
        if (a.undelivered !== undefined) {
          const undelivered = a.undelivered;
          if (gone.signal.aborted) undelivered();
          else
            res.once('close', () => {
              if (!res.writableFinished) undelivered();
            });
        }
        return send(a.status, a.body);
      }
      if (peer.role !== 'executor') {
        req.resume();
        return send(404, { error: 'not_found' });
      }
      if (req.method === 'GET' && url === '/v1/internal/issuer-jwks') {
        req.resume();
        return send(200, { jwks: options.issuerJwks() as JsonValue });
      }
      if (req.method === 'GET' && url.startsWith('/v1/internal/bundles/')) {
        req.resume();
        const hash = url.slice('/v1/internal/bundles/'.length);
        if (!HASH_RE.test(hash)) return refuse('ERR_POLICY_BUNDLE_INVALID', 'not a bundle hash');
        // Served only once this store verifies it (hash and compile): a tampered file is not passed on.
        if (isDeny(options.bundles.get(hash)))
          return refuse('ERR_POLICY_BUNDLE_INVALID', 'unknown policy bundle');
        const path = join(options.bundleDir, `${hash}.json`);
        if (!existsSync(path)) return refuse('ERR_POLICY_BUNDLE_INVALID', 'unknown policy bundle');
        return send(200, readFileSync(path));
      }
      const route =
        req.method !== 'POST'
          ? undefined
          : url === '/v1/internal/ledger/append'
            ? 'append'
            : url === '/v1/internal/ledger/envelope-context'
              ? 'context'
              : undefined;
      if (route === undefined) {
        req.resume();
        return send(404, { error: 'not_found' });
      }
      const v = await readJsonBody(req, res, MAX_BODY, 32);
      if (v === undefined) return;
      if (route === 'context') {
        const q = contextQueryOf(v);
        if (q === undefined) return refuse('ERR_REQUEST_MALFORMED', 'index, jti and decision_id');
        const r = await withDeadline(() => options.ledger.readEnvelopeContext(q), ledgerMs);
        if (r.status !== 'ok') return refuse('ERR_LEDGER_UNAVAILABLE', 'the ledger could not answer');
        const c = r.value;
        return send(200, {
          decision: (c.decision ?? null) as unknown as JsonValue,
          issued: c.issued as unknown as JsonValue,
          finalized: c.finalized as unknown as JsonValue,
        });
      }
      const entry = entryOf(v);
      if (entry === undefined) return refuse('ERR_REQUEST_MALFORMED', 'not an Execution Layer entry');
      const r = await withDeadline(() => options.ledger.append(entry), ledgerMs);
      if (r.status === 'ok') return send(200, { index: r.value.index, entry_hash: r.value.entry_hash });
      if (
        r.status === 'error' &&
        r.error instanceof FailclosedError &&
        r.error.code === 'ERR_LEDGER_PAYLOAD_FIELD'
      )
        return refuse('ERR_LEDGER_PAYLOAD_FIELD', 'a payload field is not on its allowlist');
      return refuse('ERR_LEDGER_UNAVAILABLE', 'the ledger could not durably confirm the write');
    };
    handle().catch(() => {
      try {
        if (!res.headersSent) refuse('ERR_INTERNAL', 'internal failure');
      } catch {
        res.destroy();
      }
    });
  };
  return createMtlsServer(handler, {
    files: options.files,
    allow: options.gates === undefined ? ['executor'] : ['executor', 'gate'],
    serves: {
      role: 'control-plane',
      fix: "tls.control_plane must be the Control Plane's own certificate (issue one with: failclosed certs issue --role control-plane --host H)",
    },
    host: options.host,
    port: options.port,
    ...(options.now === undefined ? {} : { now: options.now }),
    ...(options.onRefused === undefined ? {} : { onRefused: options.onRefused }),
  });
}
