/**
 * The unsigned `background` flag through a keyless Gate (docs/jobs.md "Time limits"): a
 * compromised Gate relays a call its client signed for a synchronous answer, asks the Control
 * Plane process to decide it as a background call (the envelope then grants the tool's
 * `background_timeout_ms`, half an hour here), and sends that envelope to the Execution Layer's
 * synchronous route itself. An Execution Layer whose queue workers take the background calls
 * refuses it there, `ERR_ENVELOPE_CLAIMS`, recorded, and nothing runs; the honest background call
 * of the same tool still runs through the queue under its long limit. (FC-INV-6, OE-INV-006)
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gateRequest } from '../../src/embedded/executor-node.js';
import { parseJson } from '../../src/kernel/index.js';
import type { JsonObject } from '../../src/kernel/index.js';
import { createMtlsAgent } from '../../src/transport/index.js';
import { startE2e } from './harness.js';
import type { E2e } from './harness.js';
import { queued, settled } from './jobs-support.js';
import { forgingGate } from './keyless-forge.js';
import { napPolicyDir } from './processes.js';

const NATS_URL = 'nats://127.0.0.1:4222';

let e2e: E2e;
let work: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fc-keyless-bg-limit-'));
  const policy = napPolicyDir(work);
  const nap = join(policy, 'tools', 'nap.json');
  const spec = JSON.parse(readFileSync(nap, 'utf8')) as { adapter: { limits: Record<string, unknown> } };
  spec.adapter.limits['background_timeout_ms'] = 1_800_000;
  writeFileSync(nap, JSON.stringify(spec));
  const jobs = {
    queue: 'nats',
    url: NATS_URL,
    stream: `FCBGLIMIT_${process.pid}_${Date.now()}`,
    ack_wait_ms: 2000,
  };
  e2e = await startE2e({
    topology: 'keyless',
    policyDir: policy,
    gate: { jobs },
    executor: { jobs: { ...jobs, workers: 1 } },
  });
}, 120_000);

afterAll(async () => {
  await e2e?.close();
  rmSync(work, { recursive: true, force: true });
});

/** The types and denial codes recorded for `requestId`. */
async function recorded(requestId: string): Promise<{ types: string[]; codes: unknown[] }> {
  const records = (await e2e.evidence(requestId)).body['records'] as {
    entry: { type: string; payload: { code?: unknown; constraints?: { timeout_ms?: unknown } } };
  }[];
  return {
    types: records.map((r) => r.entry.type),
    codes: records.filter((r) => r.entry.type === 'denial').map((r) => r.entry.payload.code),
  };
}

describe('a background envelope sent to the synchronous route of an Execution Layer with queue workers', () => {
  it('is refused ERR_ENVELOPE_CLAIMS and recorded; nothing runs; the honest background call still runs', async () => {
    const gate = e2e.gate!;
    const forge = await forgingGate(e2e, 'https://unused.test/mcp');
    const agent = await createMtlsAgent({ files: gate.config.tls, expect: ['executor'], clientOnly: true });
    try {
      const before = e2e.runs.get('nap') ?? 0;
      const params = { seconds: '0' };
      const forged = await forge.decideSigned('nap', params, { background: true });
      expect(forged.decision).toMatchObject({ outcome: 'allow' });
      const envelope = forged.decision['envelope'] as string;
      const claims = JSON.parse(Buffer.from(envelope.split('.')[1]!, 'base64url').toString('utf8')) as {
        constraints: { timeout_ms: number };
      };
      // The half hour the flag asked for, granted by the Control Plane process.
      expect(claims.constraints.timeout_ms).toBe(1_800_000);
      const sent = await gateRequest(
        { url: gate.config.executor_url, agent, timeoutMs: 20_000 },
        'POST',
        '/v1/execute',
        {
          envelope,
          tool: 'nap',
          tenant: 'acme',
          params,
          trace_id: forged.trace_id,
          request_id: forged.request_id,
        } satisfies JsonObject,
        1024 * 1024,
      );
      expect(sent.status).toBe(403);
      expect(parseJson(sent.body)).toMatchObject({ outcome: 'deny', code: 'ERR_ENVELOPE_CLAIMS' });
      expect(e2e.runs.get('nap') ?? 0).toBe(before);
      const r = await recorded(forged.request_id);
      expect(r.codes).toEqual(['ERR_ENVELOPE_CLAIMS']);
      expect(r.types).not.toContain('execution.receipt');

      // Through the honest Gate and the queue, the same tool runs as a background call.
      const client = e2e.client();
      const q = queued(await client.submit('nap', params, { session: 'bg-limit' }));
      expect(await settled(client, q)).toMatchObject({ outcome: 'executed' });
      expect(e2e.runs.get('nap')).toBe(before + 1);
      // A synchronous call of it runs through the synchronous route, under its own limit.
      expect(await client.call('nap', params, { session: 'bg-limit' })).toMatchObject({
        outcome: 'executed',
      });
      expect(e2e.runs.get('nap')).toBe(before + 2);
    } finally {
      agent.close();
      forge.close();
    }
  }, 120_000);
});
