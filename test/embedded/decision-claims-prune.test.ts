/**
 * Pruning the decision claims never makes a decided request decidable again (FC-INV-3,
 * docs/deployment.md "Separate Gate"): through the Control Plane's decision route for separate
 * Gates (`handleGateRoute`, a real core on SQLite with a clock of the test's own), a request
 * denied once, asked again after the claims were pruned with the clock set back more than the
 * retention, is refused `ERR_REQUEST_REPLAYED` and no second decision is recorded. The claims are
 * a store of the test's own that keeps one claim per client, so only the rule holds them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSignedRequest } from '../../src/client/index.js';
import { createSqliteDecisionClaims } from '../../src/control-plane/index.js';
import type { DecisionClaimStore } from '../../src/control-plane/index.js';
import { gateLedgerOver, initDataDir, openCore, readClientFile } from '../../src/embedded/index.js';
import type { Core } from '../../src/embedded/index.js';
import { handleGateRoute, type GateRoutes } from '../../src/embedded/gate-routes.js';
import { traceIdOf } from '../../src/gate/index.js';
import type { JsonObject } from '../../src/kernel/index.js';
import { importSigningKeyJwk } from '../../src/kernel/signing/index.js';

const DAY = 86_400_000;
const T0 = Date.now();
let now = T0;
let dir: string;
let core: Core;
let claims: DecisionClaimStore;
let routes: GateRoutes;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fc-claims-prune-'));
  await initDataDir(dir);
  core = await openCore(dir, { clock: () => now });
  claims = createSqliteDecisionClaims(join(dir, 'claims-of-the-test.db'), { keepPerClient: 1 });
  routes = {
    controlPlane: core.controlPlanePort,
    ledger: gateLedgerOver(core.ledger, core.ledgerPort),
    ledgerPort: core.ledgerPort,
    clients: core.state,
    claims,
    executor: core.executorPort,
    secretValueIn: core.secretValueIn,
    now: () => now,
    timestampToleranceMs: core.config.timestamp_tolerance_ms,
  };
}, 60_000);

afterAll(async () => {
  await claims.close();
  await core.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * As a Gate: stores `signed` as evidence, records its acceptance (once: a Gate asking again for
 * the same attempt records none) and asks the Control Plane for its decision.
 */
const accepted = new Set<string>();
async function decide(signed: ReturnType<typeof buildSignedRequest>): Promise<JsonObject> {
  const bytes = Buffer.from(JSON.stringify(signed));
  const sha = await core.ledgerPort.putEvidence(bytes, 'application/json');
  if (!accepted.has(signed.request_id)) {
    accepted.add(signed.request_id);
    await core.ledgerPort.append({
      type: 'gateway.accepted',
      trace_id: traceIdOf(signed),
      request_id: signed.request_id,
      tenant: signed.tenant,
      actor: { id: signed.identity, role: 'gate' },
      payload: { tool: signed.action, client: signed.identity, session: null, request_sha256: sha },
    });
  }
  const claim = {
    request_id: signed.request_id,
    trace_id: traceIdOf(signed),
    identity: signed.identity,
    tenant: signed.tenant,
    roles: [],
    tool: signed.action,
    params: signed.parameters,
    timestamp: Date.parse(signed.timestamp),
    session: null,
    request_sha256: sha,
    wait_ms: 0,
  };
  const req = Object.assign(Readable.from([Buffer.from(JSON.stringify(claim))]), {
    method: 'POST',
    url: '/v1/internal/cp/decide',
    headers: { 'content-type': 'application/json' },
  }) as unknown as IncomingMessage;
  const answer = await handleGateRoute(routes, req, { role: 'gate' } as never);
  expect(answer.status).toBe(200);
  return answer.body as JsonObject;
}

function sign(signedAt: number, tool = 'no_such_tool') {
  const f = readClientFile(dir, 'demo-agent');
  return buildSignedRequest({
    key: importSigningKeyJwk(f.key),
    identity: f.identity,
    tenant: f.tenant,
    action: tool,
    parameters: { message: `at ${signedAt}` },
    timestampMs: signedAt,
    session: null,
  });
}

async function decisionsOf(requestId: string): Promise<number> {
  const entries = await routes.ledger.entriesForRequest(requestId);
  return entries.filter((e) => e.type === 'decision').length;
}

describe('decision claims pruned with the clock set back (FC-INV-3)', () => {
  it('a request decided while the clock was set back stays refused ERR_REQUEST_REPLAYED after a prune, and is never decided twice', async () => {
    // The claims record a time 8 days ahead (the clock ran there, with the clients' clocks).
    now = T0 + 8 * DAY;
    expect(await decide(sign(now))).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_UNKNOWN' });
    // The clock is set back 8 days: a request decided now, and two more of the same client after it.
    now = T0;
    const early = sign(now);
    const first = await decide(early);
    expect(first).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_UNKNOWN' });
    expect(first['decision_id']).toEqual(expect.any(String));
    now = T0 + 1000;
    for (let i = 0; i < 2; i++)
      expect(await decide(sign(now + i))).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_UNKNOWN' });
    expect(await decisionsOf(early.request_id)).toBe(1);

    await claims.prune();
    // Still within the timestamp tolerance of the request: its claim must still be there.
    const again = await decide(early);
    expect(again).toMatchObject({ outcome: 'deny', code: 'ERR_REQUEST_REPLAYED', decision_id: null });
    expect(await decisionsOf(early.request_id)).toBe(1);
  });
});
