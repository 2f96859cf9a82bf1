/**
 * The forensic replay's re-derivation, decision by decision (GEI Determinism "forensic replay",
 * OE-INV-014, OE-INV-019): records made by the Control Plane's own evaluation match; every edited
 * member is a finding naming the entry and the member; decisions decided by state the ledger does
 * not hold are `partial` or `not-rederivable`, never a silent pass; missing inputs are findings.
 * Records are built with the demo policy bundle (examples/demo-policy).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  compilePolicyBundle,
  decisionPayload,
  evaluateCall,
  evaluatedFields,
} from '../../src/control-plane/index.js';
import type { PolicyRuntime } from '../../src/control-plane/index.js';
import { computeParamsSha256, parseJson, sha256Hex } from '../../src/kernel/index.js';
import type { JsonObject, JsonValue } from '../../src/kernel/index.js';
import { buildBundleFromDir } from '../../src/policy/index.js';
import { diffJson } from '../../src/replay/index.js';
import { rederiveRecords, recordsOf } from '../../src/replay/follow.js';
import { readReplayInput } from '../../src/replay/read-bundle.js';
import type { ReplayEntry, ReplayInput } from '../../src/replay/read-bundle.js';
import { backgroundTraces, rederiveDecision } from '../../src/replay/rederive.js';
import { REPO_ROOT } from '../support/paths.js';

let runtime: PolicyRuntime;
let policy: JsonValue;
let work: string;

beforeAll(async () => {
  const built = await buildBundleFromDir(join(REPO_ROOT, 'examples/demo-policy'));
  if ('outcome' in built) throw new Error(built.reason);
  runtime = compilePolicyBundle(Buffer.from(built.text), built.hash);
  policy = parseJson(built.text);
  work = mkdtempSync(join(tmpdir(), 'fc-replay-'));
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

const transfer = (amount: number): JsonObject => ({
  from_account: 'acct_a',
  to_account: 'acct_b',
  amount,
  currency: 'USD',
});

/** A raw signed request (replay reads it; `verify` checks its signature). */
function rawRequest(tool: string, params: JsonObject, session: string | null = 's-1'): Buffer {
  return Buffer.from(
    JSON.stringify({
      request_id: 'req-1',
      identity: 'agent-1',
      tenant: 'acme',
      action: tool,
      parameters: params,
      timestamp: '2026-01-01T00:00:00.000Z',
      nonce: 'n-1',
      session,
      signature: 'x',
    }),
  );
}

let nextIndex = 10;
function entry(type: string, payload: JsonObject, index = nextIndex++): ReplayEntry {
  return {
    index,
    type,
    trace_id: 'trace-1',
    request_id: 'req-1',
    tenant: 'acme',
    entry_hash: sha256Hex(`${type}:${index}`),
    payload,
  };
}

const registration = (roles: string[] = []): ReplayEntry =>
  entry('admin.client_registered', { client: 'agent-1', key_use: 'request', roles }, 1);

/** The decision record the Control Plane makes for this call (its own evaluation and record shape). */
async function honest(
  raw: Buffer,
  tainted = false,
): Promise<{ payload: JsonObject; sha: string; evaluation: Awaited<ReturnType<typeof evaluateCall>> }> {
  const r = JSON.parse(raw.toString()) as { action: string; parameters: JsonObject; session: string | null };
  const evaluation = await evaluateCall(
    runtime,
    { identity: 'agent-1', tenant: 'acme', roles: [], tool: r.action, params: r.parameters, tainted },
    5000,
  );
  const sha = sha256Hex(raw);
  const payload = decisionPayload({
    decision_id: 'dec_1',
    policy_bundle: runtime.hash,
    constitution_version: runtime.constitutionVersion,
    params_sha256: computeParamsSha256(r.parameters),
    tool: r.action,
    client: 'agent-1',
    session: r.session,
    request_sha256: sha,
    ...evaluatedFields(evaluation),
  });
  return { payload, sha, evaluation };
}

function inputOf(raw: Buffer, entries: ReplayEntry[], complete = true): ReplayInput {
  return {
    policies: new Map([[runtime.hash, policy]]),
    requests: new Map([[sha256Hex(raw), raw]]),
    entries: [...entries].sort((a, b) => a.index - b.index),
    complete,
  };
}

describe('diffJson', () => {
  it('names the leaf of an object, compares arrays whole and reports absent members', () => {
    expect(diffJson({ a: { b: 1, c: [1, 2] } }, { a: { b: 2, c: [1, 2] } })).toEqual([
      { field: 'a.b', recorded: 1, rederived: 2 },
    ]);
    expect(diffJson({ l: [1, 2] }, { l: [2, 1] })).toEqual([
      { field: 'l', recorded: [1, 2], rederived: [2, 1] },
    ]);
    expect(diffJson({ x: 1 }, {})).toEqual([{ field: 'x', recorded: 1, rederived: undefined }]);
    // Canonical comparison: member order does not matter.
    expect(diffJson({ a: 1, b: 2 }, { b: 2, a: 1 })).toEqual([]);
  });
});

describe('re-deriving a decision', () => {
  it('GEI forensic replay: allow, policy deny and escalation made by the Control Plane match byte for byte', async () => {
    for (const [tool, params] of [
      ['echo', { message: 'hi' }],
      ['transfer_funds', transfer(60000)],
      ['transfer_funds', transfer(5000)],
    ] as const) {
      const raw = rawRequest(tool, params);
      const h = await honest(raw);
      const d = entry('decision', h.payload);
      const r = await rederiveDecision(inputOf(raw, [registration(), d]), new Map(), d);
      expect(r.findings).toEqual([]);
      expect(r.status).toBe('match');
    }
  });

  it('GEI forensic replay: an escalation rewritten to one approval is REPLAY_MISMATCH at obligations.approvals', async () => {
    const raw = rawRequest('transfer_funds', transfer(5000));
    const h = await honest(raw);
    expect((h.payload['obligations'] as JsonObject)['approvals']).toBe(2);
    const d = entry('decision', {
      ...h.payload,
      obligations: { ...(h.payload['obligations'] as JsonObject), approvals: 1 },
    });
    const r = await rederiveDecision(inputOf(raw, [registration(), d]), new Map(), d);
    expect(r.status).toBe('mismatch');
    expect(r.findings).toEqual([
      expect.objectContaining({
        code: 'REPLAY_MISMATCH',
        index: d.index,
        type: 'decision',
        field: 'obligations.approvals',
        recorded: 1,
        rederived: 2,
      }),
    ]);
  });

  it('GEI forensic replay: a deny rewritten as an allow, and another tool or tenant, are named', async () => {
    const raw = rawRequest('transfer_funds', transfer(60000));
    const h = await honest(raw);
    const d = entry('decision', { ...h.payload, outcome: 'allow', code: null, tool: 'echo' });
    const r = await rederiveDecision(inputOf(raw, [registration(), d]), new Map(), d);
    expect(r.findings.map((f) => f.field)).toEqual(expect.arrayContaining(['outcome', 'code', 'tool']));
    const other = { ...entry('decision', h.payload), tenant: 'globex' };
    const r2 = await rederiveDecision(inputOf(raw, [registration(), other]), new Map(), other);
    expect(r2.findings.map((f) => f.field)).toContain('entry.tenant');
  });

  it('OE-INV-013: the session taint recorded before the decision is an input', async () => {
    const raw = rawRequest('transfer_funds', transfer(500));
    const clean = await honest(raw, false);
    const tainted = await honest(raw, true);
    expect(clean.payload['outcome']).toBe('allow');
    expect(tainted.payload['outcome']).toBe('escalate');
    const taint = entry('session.tainted', { session: 's-1', client: 'agent-1' }, 2);
    const d = entry('decision', tainted.payload);
    expect((await rederiveDecision(inputOf(raw, [registration(), taint, d]), new Map(), d)).status).toBe(
      'match',
    );
    // Without the taint record the tainted decision is not what the policy decides.
    expect((await rederiveDecision(inputOf(raw, [registration(), d]), new Map(), d)).status).toBe('mismatch');
    // In a partial export the taint may lie outside it: said so, not a pass and not a mismatch.
    const partial = await rederiveDecision(inputOf(raw, [registration(), d], false), new Map(), d);
    expect(partial.status).toBe('not-rederivable');
  });

  it('a kill-switch deny is not-rederivable, with its request-derived members still compared', async () => {
    const raw = rawRequest('echo', { message: 'hi' });
    const h = await honest(raw);
    const halted = {
      ...h.payload,
      outcome: 'deny',
      code: 'ERR_KILL_SWITCH',
      rationale: 'the kill switch is engaged',
      policy_bundle: null,
      constitution_version: null,
      rules_fired: [],
      risk: null,
      obligations: null,
    };
    const d = entry('decision', halted);
    const r = await rederiveDecision(inputOf(raw, [registration(), d]), new Map(), d);
    expect(r).toMatchObject({ status: 'not-rederivable', findings: [] });
    expect(r.reason).toMatch(/ERR_KILL_SWITCH/);
    const forged = entry('decision', { ...halted, params_sha256: '0'.repeat(64) });
    const r2 = await rederiveDecision(inputOf(raw, [registration(), forged]), new Map(), forged);
    expect(r2.findings.map((f) => f.field)).toEqual(['params_sha256']);
  });

  it('a spend deny after a permitting evaluation is partial: the policy facts are checked', async () => {
    const raw = rawRequest('echo', { message: 'hi' });
    const h = await honest(raw);
    const spent = {
      ...h.payload,
      outcome: 'deny',
      code: 'ERR_CIRCUIT_OPEN',
      rationale: 'circuit breaker spend is open',
    };
    const d = entry('decision', spent);
    const r = await rederiveDecision(inputOf(raw, [registration(), d]), new Map(), d);
    expect(r.status).toBe('partial');
    const forged = entry('decision', { ...spent, risk: 'critical' });
    expect(
      (await rederiveDecision(inputOf(raw, [registration(), forged]), new Map(), forged)).findings,
    ).toEqual([expect.objectContaining({ field: 'risk', recorded: 'critical' })]);
  });

  it('missing inputs are findings (complete export), an MCP principal is not-rederivable', async () => {
    const raw = rawRequest('echo', { message: 'hi' });
    const h = await honest(raw);
    const d = entry('decision', h.payload);
    const noRequest: ReplayInput = { ...inputOf(raw, [registration(), d]), requests: new Map() };
    expect((await rederiveDecision(noRequest, new Map(), d)).findings[0]).toMatchObject({
      code: 'REPLAY_INPUT_MISSING',
      field: 'request_sha256',
    });
    const noPolicy: ReplayInput = { ...inputOf(raw, [registration(), d]), policies: new Map() };
    expect((await rederiveDecision(noPolicy, new Map(), d)).findings[0]).toMatchObject({
      code: 'REPLAY_INPUT_MISSING',
      field: 'policy_bundle',
    });
    expect((await rederiveDecision(inputOf(raw, [d]), new Map(), d)).findings[0]).toMatchObject({
      code: 'REPLAY_INPUT_MISSING',
      field: 'client',
    });
    const minted = Buffer.from(JSON.stringify({ kind: 'minted' }));
    const m = entry('decision', { ...h.payload, request_sha256: sha256Hex(minted) });
    const r = await rederiveDecision(inputOf(minted, [registration(), m]), new Map(), m);
    expect(r.status).toBe('not-rederivable');
  });
});

describe('re-deriving the records that follow a decision', () => {
  it('OE-INV-019: approval thresholds and envelope claims are compared; a record a deny cannot have is named', async () => {
    const raw = rawRequest('transfer_funds', transfer(5000));
    const h = await honest(raw);
    const d = entry('decision', h.payload);
    const requested = entry('approval.requested', { decision_id: 'dec_1', required: 1, roles: ['treasury'] });
    const input = inputOf(raw, [registration(), d, requested]);
    const r = await rederiveDecision(input, new Map(), d);
    const findings = rederiveRecords(d, r, recordsOf(input.entries, d), backgroundTraces(input));
    expect(findings.map((f) => [f.index, f.field, f.recorded, f.rederived])).toContainEqual([
      requested.index,
      'required',
      1,
      2,
    ]);
    const envelopeWithoutApproval = entry('envelope.issued', { decision_id: 'dec_1' });
    expect(rederiveRecords(d, r, [envelopeWithoutApproval], new Set())[0]).toMatchObject({
      code: 'REPLAY_UNEXPECTED_RECORD',
      index: envelopeWithoutApproval.index,
    });

    const denyRaw = rawRequest('transfer_funds', transfer(60000));
    const denied = entry('decision', (await honest(denyRaw)).payload);
    const dr = await rederiveDecision(inputOf(denyRaw, [registration(), denied]), new Map(), denied);
    expect(
      rederiveRecords(denied, dr, [entry('envelope.issued', { decision_id: 'dec_1' })], new Set())[0]?.code,
    ).toBe('REPLAY_UNEXPECTED_RECORD');
  });
});

describe('reading a bundle', () => {
  it('refuses what is not a complete v2 bundle', async () => {
    const path = join(work, 'x.jsonl');
    writeFileSync(path, '{"format":"failclosed.audit-bundle/v1"}\n');
    expect(await readReplayInput(path)).toMatch(/not a failclosed\.audit-bundle\/v2/);
    writeFileSync(path, '{"record":"header","format":"failclosed.audit-bundle/v2"}\n');
    expect(await readReplayInput(path)).toMatch(/truncated/);
    expect(await readReplayInput(join(work, 'absent.jsonl'))).toMatch(/cannot read/);
  });
});
