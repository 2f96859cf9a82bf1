/**
 * Two gate replicas serving at once on one PostgreSQL database are exactly as safe as one
 * (SPEC §1 "Distributed"; OE-INV-017 single use; FC-INV-4; L7 Boundary B): one envelope
 * presented several times at once to the Execution Layers of both replicas runs exactly once,
 * trial after trial. The envelope is a real one, issued by replica A for a governed call and
 * captured on its way to A's Execution Layer (the Gate's void dropped, as in a partition), so it
 * stays live until its TTL. The trials run in two lanes at once (each trial's presentations
 * still at once), so the suite waits on the database less; the lanes add contention, not remove it.
 */
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GateExecutor } from '../../src/gate/index.js';
import { initDataDir, startEmbedded, type EmbeddedInstance } from '../../src/embedded/index.js';
import { nextSchema, useTestDatabase } from '../support/postgres.js';
import { clientOf } from './postgres-support.js';

const db = useTestDatabase('fc_e2e_pg_rep');
/** Trials; each presents one envelope PRESENTATIONS times at once, spread over both replicas. */
const TRIALS = Number(process.env.FC_REPLICA_TRIALS ?? 1000);
const PRESENTATIONS = 4;
/** Trials in flight at once, each with its own session and message. */
const LANES = 2;

let work: string;
let a: EmbeddedInstance;
let b: EmbeddedInstance;
let dirA: string;
let runs = 0;
/** The envelopes A's Gate sends to its Execution Layer, by the call's message, kept and never run. */
const captured = new Map<string, string>();

const capture = (): GateExecutor => ({
  execute: (call) => {
    captured.set(JSON.stringify(call.params['message']), call.envelope);
    return Promise.resolve({ outcome: 'deny', code: 'ERR_EXECUTION_UNAVAILABLE', reason: 'captured' });
  },
  // Dropped: the envelope stays live (a partition between the Gate and the Execution Layer).
  void: () => Promise.resolve({ outcome: 'deny', code: 'ERR_EXECUTION_UNAVAILABLE', reason: 'dropped' }),
});

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fc-e2e-pg-rep-'));
  dirA = join(work, 'a');
  const dirB = join(work, 'b');
  await initDataDir(dirA, { backend: `${db.url}?schema=${nextSchema()}` });
  cpSync(dirA, dirB, { recursive: true });
  const onToolRun = (): void => void (runs += 1);
  const breakers = { maxCallsPerTenantWindow: 1_000_000, maxCallsPerSessionWindow: 1_000_000 };
  a = await startEmbedded(dirA, {
    port: 0,
    executionPort: 0,
    onToolRun,
    breakers,
    decorate: { gateExecutor: capture },
  });
  b = await startEmbedded(dirB, { port: 0, executionPort: 0, onToolRun, breakers });
}, 60_000);

afterAll(async () => {
  await a?.close();
  await b?.close();
  rmSync(work, { recursive: true, force: true });
});

async function present(url: string, envelope: string, message: string): Promise<Record<string, unknown>> {
  const res = await fetch(`${url}/v1/execute`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ envelope, tool: 'echo', tenant: 'acme', params: { message } }),
  });
  return (await res.json()) as Record<string, unknown>;
}

describe('two replicas on one PostgreSQL database (OE-INV-017, FC-INV-4)', () => {
  it(`${TRIALS} trials: one envelope presented ${PRESENTATIONS} times at once over both replicas runs exactly once`, async () => {
    const client = clientOf(dirA, a);
    const urls = [a.executionUrl, b.executionUrl];
    const before = runs;
    const trial = async (t: number): Promise<void> => {
      const message = `trial ${t}`;
      const r = await client.call('echo', { message }, { session: `replicas-${t}` });
      expect(r, `trial ${t}: ${JSON.stringify(r)}`).toMatchObject({
        outcome: 'deny',
        code: 'ERR_EXECUTION_UNAVAILABLE',
      });
      const envelope = captured.get(JSON.stringify(message));
      if (envelope === undefined) throw new Error(`trial ${t}: no envelope captured`);
      const answers = await Promise.all(
        Array.from({ length: PRESENTATIONS }, (_, i) => present(urls[i % 2]!, envelope, message)),
      );
      const executed = answers.filter((x) => x['outcome'] === 'executed');
      expect(executed, `trial ${t}: ${JSON.stringify(answers)}`).toHaveLength(1);
      for (const x of answers.filter((y) => y['outcome'] !== 'executed'))
        expect(x, `trial ${t}`).toMatchObject({ outcome: 'deny', code: 'ERR_NONCE_REPLAYED' });
    };
    await Promise.all(
      Array.from({ length: LANES }, async (_, lane) => {
        for (let t = lane; t < TRIALS; t += LANES) await trial(t);
      }),
    );
    // Each trial answered `executed` once, and an executed answer is a run: the runs equal the
    // trials only if no envelope ran twice.
    expect(runs - before).toBe(TRIALS);
  }, 600_000);
});
