/**
 * Forensic replay end to end (GEI Determinism "forensic replay", OE-INV-014, OE-INV-019): a real
 * data directory (the SPEC §7 walkthrough: allow, policy deny, a two-approval transfer, a
 * break-glass transfer, plus a call refused by the kill switch) replays clean through the CLI, on
 * the data directory and on its export; and a holder of every key who rewrites the two-approval
 * transfer to say "1 approval required" everywhere and re-signs it all passes `failclosed verify`
 * with the trust roots pinned, but not `failclosed replay`, which names the entry and the member.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDemo } from '../../src/cli/demo.js';
import { runCli } from '../../src/cli/run.js';
import type { ReplayReport } from '../../src/replay/index.js';
import { openBundle, renderBundle, resignWithDeploymentKeys, type Rec } from './forge-ledger.js';

let work: string;
let dir: string;
let bundlePath: string;
let trustPath: string;

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, { out: (t) => out.push(t), err: (t) => err.push(t), env: {} });
  return { code, out: out.join(''), err: err.join('') };
}

async function replay(...argv: string[]): Promise<{ code: number; report: ReplayReport }> {
  const r = await cli('replay', ...argv, '--json');
  const report = JSON.parse(r.out) as ReplayReport;
  expect(report.exitCode).toBe(r.code);
  return { code: r.code, report };
}

/** The escalated transfer that two treasury approvers approved (not the break-glass one). */
function approvedTransfer(b: ReturnType<typeof openBundle>): Rec {
  const decision = b.entries.find(
    (e) =>
      e['type'] === 'decision' &&
      e['payload']['outcome'] === 'escalate' &&
      b.entries.some(
        (f) =>
          f['type'] === 'approval.finalized' &&
          f['payload']['decision_id'] === e['payload']['decision_id'] &&
          f['payload']['verdict'] === 'approve',
      ),
  );
  expect(decision?.['payload']['obligations']['approvals']).toBe(2);
  return decision!;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fc-e2e-replay-'));
  dir = join(work, 'data');
  expect(await runDemo(() => undefined, { dataDir: dir })).toBe(0);
  // A call the kill switch refuses: decided by governance state, not by policy.
  expect((await cli('--data', dir, 'admin', 'kill-switch', 'on')).code).toBe(0);
  const halted = await cli('--data', dir, 'call', 'echo', '--params', '{"message":"halted"}');
  expect(halted.code).toBe(1);
  expect(halted.err + halted.out).toContain('ERR_KILL_SWITCH');
  expect((await cli('--data', dir, 'admin', 'kill-switch', 'off')).code).toBe(0);
  bundlePath = join(work, 'bundle.jsonl');
  trustPath = join(work, 'trust-roots.json');
  expect((await cli('--data', dir, 'ledger', 'export', '--out', bundlePath)).code).toBe(0);
  expect((await cli('--data', dir, 'trust-roots', '--out', trustPath)).code).toBe(0);
}, 120_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('failclosed replay on an honest ledger', () => {
  it('GEI forensic replay: every policy decision of the export re-derives byte for byte (exit 0)', async () => {
    const { code, report } = await replay('--bundle', bundlePath, '--trust', trustPath);
    expect(code).toBe(0);
    expect(report.verify.exitCode).toBe(0);
    expect(report.findings).toEqual([]);
    const by = (outcome: string, status: string) =>
      report.decisions.filter((d) => d.outcome === outcome && d.status === status).length;
    expect(by('allow', 'match')).toBeGreaterThanOrEqual(2);
    expect(by('deny', 'match')).toBeGreaterThanOrEqual(1);
    // The two-approval transfer and the break-glass transfer, with their approvals and envelopes.
    expect(by('escalate', 'match')).toBe(2);
    for (const d of report.decisions.filter((x) => x.outcome === 'escalate'))
      expect(d.compared.length).toBeGreaterThan(2);
  });

  it('GEI forensic replay: a kill-switch refusal is reported as not re-derivable, never as a silent pass', async () => {
    const { code, report } = await replay('--bundle', bundlePath, '--trust', trustPath);
    expect(code).toBe(0);
    const halted = report.decisions.filter((d) => d.code === 'ERR_KILL_SWITCH');
    expect(halted).toHaveLength(1);
    expect(halted[0]).toMatchObject({ status: 'not-rederivable' });
    expect(halted[0]?.reason).toMatch(/governance state/);
    expect(report.summary.notRederivable).toBe(1);
    // --strict refuses what cannot be re-derived.
    expect((await cli('replay', '--bundle', bundlePath, '--trust', trustPath, '--strict')).code).toBe(1);
  });

  it('GEI forensic replay: `failclosed replay TRACE_ID` on the data directory replays that trace (exit 0)', async () => {
    const b = openBundle(readFileSync(bundlePath, 'utf8'));
    const decision = approvedTransfer(b);
    const { code, report } = await replay('--data', dir, decision['trace_id'] as string);
    expect(code).toBe(0);
    expect(report.trace_id).toBe(decision['trace_id']);
    expect(report.decisions).toHaveLength(1);
    expect(report.decisions[0]).toMatchObject({ index: decision['index'], status: 'match' });
    // The retry's trace holds the envelope: it names the same decision.
    const issued = b.entries.find(
      (e) =>
        e['type'] === 'envelope.issued' && e['payload']['decision_id'] === decision['payload']['decision_id'],
    )!;
    expect(issued['trace_id']).not.toBe(decision['trace_id']);
    const retry = await replay('--bundle', bundlePath, '--trust', trustPath, issued['trace_id'] as string);
    expect(retry.code).toBe(0);
    expect(retry.report.decisions[0]?.compared).toContain(issued['index']);
  });

  it('a trace with no decision is unusable input (exit 2); bad arguments are usage errors (exit 2)', async () => {
    expect((await replay('--bundle', bundlePath, '--trust', trustPath, 'no-such-trace')).code).toBe(2);
    expect((await cli('replay')).code).toBe(2);
    expect(
      (await cli('replay', '--bundle', bundlePath, '--trust-bundle-keys', '--trust', trustPath)).code,
    ).toBe(2);
  });

  it('without pinned roots nothing is reported as verified (exit 3)', async () => {
    expect((await replay('--bundle', bundlePath)).code).toBe(3);
  });
});

describe('failclosed replay against a holder of every key', () => {
  it('GEI forensic replay: "1 approval required" rewritten and re-signed everywhere passes verify but not replay', async () => {
    const b = openBundle(readFileSync(bundlePath, 'utf8'));
    const decision = approvedTransfer(b);
    const id = decision['payload']['decision_id'] as string;
    decision['payload']['obligations']['approvals'] = 1;
    const rewritten = ['approval.requested', 'approval.added', 'approval.flagged', 'approval.finalized'];
    const touched = b.entries.filter(
      (e) => rewritten.includes(e['type']) && e['payload']['decision_id'] === id,
    );
    expect(touched.map((e) => e['type'])).toEqual(expect.arrayContaining(rewritten));
    for (const e of touched) e['payload']['required'] = 1;
    resignWithDeploymentKeys(b, dir);
    const forged = join(work, 'forged.jsonl');
    writeFileSync(forged, renderBundle(b));

    // The measured gap: the kernel-only verifier, with the deployment's trust roots pinned, accepts it.
    const verified = await cli('verify', forged, '--trust', trustPath);
    expect(verified.code).toBe(0);

    const { code, report } = await replay('--bundle', forged, '--trust', trustPath);
    expect(code).toBe(1);
    expect(report.verify.exitCode).toBe(0);
    expect(report.findings[0]).toMatchObject({
      code: 'REPLAY_MISMATCH',
      index: decision['index'],
      type: 'decision',
      field: 'obligations.approvals',
      recorded: 1,
      rederived: 2,
    });
    const requested = touched.find((e) => e['type'] === 'approval.requested')!;
    expect(report.findings).toContainEqual(
      expect.objectContaining({ index: requested['index'], field: 'required', recorded: 1, rederived: 2 }),
    );
    expect(report.decisions.find((d) => d.index === decision['index'])?.status).toBe('mismatch');
    // The other decisions still re-derive: the finding is precise.
    expect(report.summary.mismatch).toBe(1);

    // The text report names the entry and the member too.
    const text = await cli(
      'replay',
      '--bundle',
      forged,
      '--trust',
      trustPath,
      decision['trace_id'] as string,
    );
    expect(text.code).toBe(1);
    expect(text.out).toContain(
      `entry #${String(decision['index'])} (decision) records obligations.approvals = 1; replay derives 2`,
    );
  });

  it('an edit without re-signing is refused before replay, by verify (exit 1)', async () => {
    const b = openBundle(readFileSync(bundlePath, 'utf8'));
    approvedTransfer(b)['payload']['obligations']['approvals'] = 1;
    const edited = join(work, 'edited.jsonl');
    writeFileSync(edited, renderBundle(b));
    const { code, report } = await replay('--bundle', edited, '--trust', trustPath);
    expect(code).toBe(1);
    expect(report.verify.exitCode).toBe(1);
    expect(report.error).toMatch(/fails verification/);
  });
});
