/** A Gate over real HTTP and real SQLite state, with recording fakes for the other roles. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createGate, createGateServer, createSqliteGateState } from '../../src/gate/index.js';
import type {
  Gate,
  GateDeps,
  GateLedger,
  EvidenceRead,
  GatewayEvent,
  GateServer,
  GateStateStore,
  VoidCall,
  LedgerEntryView,
} from '../../src/gate/index.js';
import { sha256Hex } from '../../src/kernel/index.js';
import { generateSigningKey } from '../../src/kernel/signing/index.js';
import type { SigningKey } from '../../src/kernel/signing/index.js';
import { buildSignedRequest } from '../../src/client/index.js';
import type { SignedRequestBody } from '../../src/client/index.js';

export const T0 = Date.parse('2025-06-01T12:00:00.000Z');
export const OPERATOR_TOKEN = 'operator-token-for-tests-0123456789';

export interface RecordingLedger extends GateLedger {
  readonly events: GatewayEvent[];
  /** Recorded reads of evidence (`audit.read`). */
  readonly reads: EvidenceRead[];
  readonly evidence: Map<string, Buffer>;
  failAppends: boolean;
  /** Event types whose appends fail (the rest succeed). */
  failTypes: string[];
}

export function recordingLedger(): RecordingLedger {
  const events: GatewayEvent[] = [];
  const evidence = new Map<string, Buffer>();
  const reads: EvidenceRead[] = [];
  const ledger: RecordingLedger = {
    events,
    reads,
    evidence,
    failAppends: false,
    failTypes: [],
    putEvidence(bytes) {
      if (ledger.failAppends) return Promise.reject(new Error('disk full'));
      const h = sha256Hex(bytes);
      evidence.set(h, Buffer.from(bytes));
      return Promise.resolve(h);
    },
    appendGatewayEvent(event) {
      if (ledger.failAppends || ledger.failTypes.includes(event.type))
        return Promise.reject(new Error('disk full'));
      events.push(event);
      return Promise.resolve({ index: events.length - 1, entry_hash: sha256Hex(String(events.length)) });
    },
    getEvidence(sha256) {
      return Promise.resolve(evidence.get(sha256));
    },
    entriesForRequest(requestId) {
      const out: LedgerEntryView[] = [];
      events.forEach((e, index) => {
        if (e.request_id === requestId)
          out.push({
            index,
            type: e.type,
            entry_hash: sha256Hex(String(index + 1)),
            trace_id: e.trace_id,
            payload: e.payload,
          });
      });
      return Promise.resolve(out);
    },
    latestCheckpoint() {
      return Promise.resolve(
        events.length === 0 ? null : { size: events.length, root_hash: 'ab'.repeat(32), note: 'note' },
      );
    },
    proveInclusion() {
      return Promise.resolve(['cd'.repeat(32)]);
    },
    recordRead(read) {
      if (ledger.failAppends || ledger.failTypes.includes('audit.read'))
        return Promise.reject(new Error('disk full'));
      reads.push(read);
      return Promise.resolve({
        index: events.length + reads.length,
        entry_hash: sha256Hex(`read${reads.length}`),
      });
    },
  };
  return ledger;
}

export interface Harness {
  readonly url: string;
  /** The Gate behind the server, for calls that need no transport. */
  readonly gate: Gate;
  readonly server: GateServer;
  readonly state: GateStateStore;
  readonly ledger: RecordingLedger;
  readonly key: SigningKey;
  readonly cpCalls: unknown[];
  readonly execCalls: unknown[];
  /** Void requests, each with the number of gateway records written before it. */
  readonly voidCalls: { call: VoidCall; recordsBefore: number }[];
  clock: { now: number };
  request(overrides?: Partial<Parameters<typeof buildSignedRequest>[0]>): SignedRequestBody;
  post(body: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
  postRaw(text: string | Buffer): Promise<{ status: number; body: Record<string, unknown> }>;
  failedCodes(): string[];
  close(): Promise<void>;
}

export interface HarnessOptions {
  readonly decide?: GateDeps['controlPlane']['decide'];
  readonly execute?: GateDeps['executor']['execute'];
  readonly void?: GateDeps['executor']['void'];
  readonly extra?: Partial<GateDeps>;
  /** `POST /v1/calls` served (default true; false as on the Control Plane process's client port). */
  readonly calls?: boolean;
}

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'fc-gate-'));
  const state = createSqliteGateState({ path: join(dir, 'state.db') });
  const key = generateSigningKey();
  await state.registerClient({ identity: 'agent-1', tenant: 'acme', jwk: key.publicJwk, atMs: T0 });
  const ledger = recordingLedger();
  const cpCalls: unknown[] = [];
  const execCalls: unknown[] = [];
  const voidCalls: { call: VoidCall; recordsBefore: number }[] = [];
  const clock = { now: T0 };
  const gate = createGate({
    clock: () => clock.now,
    clients: state,
    replay: state,
    ledger,
    controlPlane: {
      decide: async (req) => {
        cpCalls.push(req);
        if (opts.decide) return opts.decide(req);
        return {
          outcome: 'allow',
          decision_id: 'dec-1',
          envelope: 'aGVhZA.eyJ0b29sIjoiZWNobyJ9.c2ln',
          decision_ref: { index: 3, entry_hash: 'ef'.repeat(32) },
          policy_bundle: 'bundle',
        };
      },
      ready: () => Promise.resolve({ ready: true }),
      issuerJwks: () => ({ keys: [], revoked: [] }),
    },
    executor: {
      execute: async (call) => {
        execCalls.push(call);
        if (opts.execute) return opts.execute(call);
        return {
          outcome: 'executed',
          result: { echoed: call.params },
          receipt: { index: 4, entry_hash: '01'.repeat(32) },
        };
      },
      void: async (call) => {
        voidCalls.push({ call, recordsBefore: ledger.events.length });
        if (opts.void) return opts.void(call);
        return { outcome: 'voided', recorded: true };
      },
    },
    operatorTokenSha256: sha256Hex(OPERATOR_TOKEN),
    timeouts: { controlPlaneMs: 200, executionMs: 200, ledgerMs: 200 },
    ...opts.extra,
  });
  const server = await createGateServer(gate, {
    host: '127.0.0.1',
    port: 0,
    ...(opts.calls === undefined ? {} : { calls: opts.calls }),
  });
  const postRaw = async (text: string | Buffer) => {
    const res = await fetch(`${server.url}/v1/calls`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: text,
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  return {
    gate,
    url: server.url,
    server,
    state,
    ledger,
    key,
    cpCalls,
    execCalls,
    voidCalls,
    clock,
    request: (overrides = {}) =>
      buildSignedRequest({
        key,
        identity: 'agent-1',
        tenant: 'acme',
        action: 'echo',
        parameters: { text: 'hi' },
        timestampMs: clock.now,
        ...overrides,
      }),
    post: (body) => postRaw(JSON.stringify(body)),
    postRaw,
    failedCodes: () =>
      ledger.events.filter((e) => e.type === 'gateway.failed').map((e) => e.payload['code'] as string),
    close: async () => {
      await server.close();
      await state.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
