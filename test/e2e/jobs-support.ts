/**
 * Reading background calls in end-to-end tests (docs/jobs.md): the `202` of a queued call, and a
 * job read with its token until it settles.
 */
import { expect } from 'vitest';
import type { FailclosedClient, JobState, QueuedCall, SubmitResult } from '../../src/client/index.js';
import { until } from './processes.js';

/** The queued answer of `r`; fails the test when the call was not queued. */
export function queued(r: SubmitResult): QueuedCall {
  expect(r).toMatchObject({ outcome: 'queued', status: 202 });
  if (r.outcome !== 'queued') throw new Error(`not queued: ${JSON.stringify(r)}`);
  return r;
}

/** Reads the job `q` with its token until it is neither queued nor unknown (within `limitMs`). */
export async function settled(client: FailclosedClient, q: QueuedCall, limitMs = 30_000): Promise<JobState> {
  let s: JobState = { outcome: 'unknown', status: 0 };
  await until(
    async () => {
      s = await client.job(q.job.id, q.job.token);
      return s.outcome !== 'queued' && s.outcome !== 'unknown';
    },
    `job ${q.job.id}`,
    limitMs,
  );
  return s;
}
