/**
 * Crash recovery over the real SQLite ledger and nonce store (SPEC §5, FC-INV-5): each request
 * left open gets one truthful `request.abandoned`; an issued, unconsumed envelope is voided first
 * (it can never run afterwards); a consumed one is reported as "may have run"; the open-request
 * index comes from the store, not from a scan; a second pass finds nothing left.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createSqliteNonceStore } from '../../src/execution/index.js';
import { createSqliteLedgerStore } from '../../src/ledger/index.js';
import type { EntryInput, Ledger } from '../../src/ledger/index.js';
import { recordAbandonedRequests, recoveryDeps } from '../../src/embedded/recovery.js';
import { keylessMayStillIssue } from '../../src/embedded/core.js';
import { createSqliteDecisionClaims } from '../../src/control-plane/index.js';
import { openLedger, tempDir } from '../ledger/fixtures.js';

const EXP = 2_000_000_000;

function entry(
  type: EntryInput['type'],
  id: string,
  payload: EntryInput['payload'],
  role = 'gate',
): EntryInput {
  return {
    type,
    trace_id: `t-${id}`,
    request_id: id,
    tenant: 'acme',
    actor: { id: role === 'gate' ? 'agent-1' : role, role },
    payload,
  };
}

async function accepted(
  ledger: Ledger,
  id: string,
  stage: 'accepted' | 'issued' | 'completed',
): Promise<void> {
  await ledger.append(
    entry('gateway.accepted', id, { tool: 'echo', client: 'agent-1', request_sha256: 'a'.repeat(64) }),
  );
  if (stage === 'accepted') return;
  await ledger.append(entry('decision', id, { decision_id: `d-${id}`, outcome: 'allow' }, 'control-plane'));
  await ledger.append(
    entry('envelope.issued', id, { decision_id: `d-${id}`, jti: `j-${id}`, exp: EXP }, 'control-plane'),
  );
  if (stage === 'completed')
    await ledger.append(
      entry('gateway.completed', id, { outcome: 'executed', result_sha256: 'b'.repeat(64) }),
    );
}

describe('recordAbandonedRequests (crash recovery)', () => {
  it('FC-INV-5: a request whose Gate records its outcome while the sweep voids and reads keeps that outcome, and is not counted abandoned', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const store = createSqliteLedgerStore({ path: join(dir, 'ledger.db') });
      const ledger = await openLedger(store);
      const nonces = createSqliteNonceStore({ path: join(dir, 'nonces.db'), now: () => 1_000 });
      await accepted(ledger, 'closing', 'issued');
      await accepted(ledger, 'left', 'accepted');
      const deps = recoveryDeps(ledger, nonces);
      // The request's own Gate records its outcome between the sweep's reading and its append.
      const report = await recordAbandonedRequests(
        {
          ...deps,
          append: async (input, ifOpen) => {
            if (input.request_id === 'closing')
              await ledger.append(
                entry('gateway.failed', 'closing', { outcome: 'deny', code: 'ERR_EXECUTION_UNAVAILABLE' }),
              );
            return deps.append(input, ifOpen);
          },
        },
        'restart',
      );
      expect(report).toEqual({ abandoned: 1, mayHaveRun: 0 });
      const types = async (id: string) => (await store.readByRequest(id)).map((e) => e.type);
      expect(await types('closing')).not.toContain('request.abandoned');
      expect((await types('closing')).filter((t) => t === 'gateway.failed')).toHaveLength(1);
      expect(await types('left')).toContain('request.abandoned');
      expect(await store.openRequests?.()).toEqual([]);
      await ledger.close();
      await nonces.close();
    } finally {
      cleanup();
    }
  });

  it('records each open request once, voiding unconsumed envelopes and reporting consumed ones', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const store = createSqliteLedgerStore({ path: join(dir, 'ledger.db') });
      const ledger = await openLedger(store);
      const nonces = createSqliteNonceStore({ path: join(dir, 'nonces.db'), now: () => 1_000 });
      await accepted(ledger, 'never-decided', 'accepted');
      await accepted(ledger, 'issued-unused', 'issued');
      await accepted(ledger, 'issued-used', 'issued');
      await accepted(ledger, 'done', 'completed');
      // The executor had consumed this one when the process died.
      expect(
        await nonces.consume({
          jti: 'j-issued-used',
          tenant: 'acme',
          exp: EXP,
          decision_id: 'd-issued-used',
        }),
      ).toBe('fresh');
      expect((await store.openRequests?.())?.map((r) => r.request_id)).toEqual([
        'never-decided',
        'issued-unused',
        'issued-used',
      ]);

      const report = await recordAbandonedRequests(recoveryDeps(ledger, nonces), 'restart');
      expect(report).toEqual({ abandoned: 3, mayHaveRun: 1 });
      const abandoned = async (id: string) =>
        (await store.readByRequest(id)).filter((e) => e.type === 'request.abandoned').map((e) => e.payload);
      expect(await abandoned('never-decided')).toEqual([
        expect.objectContaining({
          code: 'ERR_ABANDONED',
          outcome: 'abandoned',
          status: 'accepted',
          envelope_consumed: false,
        }),
      ]);
      expect(await abandoned('issued-unused')).toEqual([
        expect.objectContaining({
          status: 'envelope-issued',
          decision_id: 'd-issued-unused',
          jti: 'j-issued-unused',
          envelope_consumed: false,
        }),
      ]);
      expect(await abandoned('issued-used')).toEqual([
        expect.objectContaining({ jti: 'j-issued-used', envelope_consumed: true }),
      ]);
      expect(await abandoned('done')).toEqual([]);
      // The voided envelope can never be consumed now: the executor would deny it.
      expect(
        await nonces.consume({
          jti: 'j-issued-unused',
          tenant: 'acme',
          exp: EXP,
          decision_id: 'd-issued-unused',
        }),
      ).toBe('voided');
      // Nothing is left open: a second pass records nothing.
      expect(await store.openRequests?.()).toEqual([]);
      expect(await recordAbandonedRequests(recoveryDeps(ledger, nonces), 'restart')).toEqual({
        abandoned: 0,
        mayHaveRun: 0,
      });
      await ledger.close();
      await nonces.close();
    } finally {
      cleanup();
    }
  });

  it('a request with a receipt: the abandoned record says the tool ran only when the receipt succeeded', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const store = createSqliteLedgerStore({ path: join(dir, 'ledger.db') });
      const ledger = await openLedger(store);
      const nonces = createSqliteNonceStore({ path: join(dir, 'nonces.db'), now: () => 1_000 });
      for (const [id, status] of [
        ['ran', 'succeeded'],
        ['ended-before-start', 'failed'],
      ] as const) {
        await accepted(ledger, id, 'issued');
        await ledger.append(
          entry(
            'execution.receipt',
            id,
            {
              decision_id: `d-${id}`,
              jti: `j-${id}`,
              status,
              ...(status === 'failed'
                ? {
                    code: 'ERR_CALL_CANCELLED',
                    reason: 'the caller gave up on the call before the tool started',
                  }
                : {}),
            },
            'executor',
          ),
        );
      }
      expect(await recordAbandonedRequests(recoveryDeps(ledger, nonces), 'restart')).toEqual({
        abandoned: 2,
        mayHaveRun: 2,
      });
      const reason = async (id: string) =>
        (await store.readByRequest(id)).find((e) => e.type === 'request.abandoned')?.payload['reason'];
      expect(await reason('ran')).toBe(
        'the process stopped before the call had an outcome; the tool ran (receipt recorded: succeeded)',
      );
      expect(await reason('ended-before-start')).toBe(
        'the process stopped before the call had an outcome; its receipt records a failed execution, and its reason whether the tool started',
      );
      await ledger.close();
      await nonces.close();
    } finally {
      cleanup();
    }
  });

  it('leaves a job a broker holds open while a worker could still run it; with a separate Execution Layer, says "may have run"', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const store = createSqliteLedgerStore({ path: join(dir, 'ledger.db') });
      const ledger = await openLedger(store);
      const nonces = createSqliteNonceStore({ path: join(dir, 'nonces.db'), now: () => 1_000 });
      await accepted(ledger, 'brokered', 'issued');
      await ledger.append(
        entry('gateway.queued', 'brokered', { decision_id: 'd-brokered', queue: 'nats:JOBS' }),
      );
      await accepted(ledger, 'local-job', 'issued');
      await ledger.append(
        entry('gateway.queued', 'local-job', { decision_id: 'd-local-job', queue: 'local' }),
      );
      const open = async () => (await store.openRequests?.())?.map((r) => r.request_id);
      // Before exp + tolerance: the brokered job stays open; the in-process one is abandoned.
      let now = (EXP + 30) * 1000;
      const deps = () => recoveryDeps(ledger, nonces, { now: () => now, toleranceSec: 30 });
      expect(await recordAbandonedRequests(deps(), 'restart')).toEqual({ abandoned: 1, mayHaveRun: 0 });
      expect(await open()).toEqual(['brokered']);
      // Past it no worker can run it: abandoned, its envelope voided here (the workers' store).
      now += 1;
      expect(await recordAbandonedRequests(deps(), 'restart')).toEqual({ abandoned: 1, mayHaveRun: 0 });
      expect(await open()).toEqual([]);

      // A separate Execution Layer keeps its nonces elsewhere: a void here proves nothing.
      await accepted(ledger, 'remote', 'issued');
      const remote = recoveryDeps(ledger, nonces, { voidIsAuthoritative: false });
      expect(await recordAbandonedRequests(remote, 'restart')).toEqual({ abandoned: 1, mayHaveRun: 1 });
      const payload = (await store.readByRequest('remote')).find(
        (e) => e.type === 'request.abandoned',
      )?.payload;
      expect(payload).toMatchObject({ envelope_consumed: true });
      expect(payload?.['reason']).toMatch(/may have run/);
      await ledger.close();
      await nonces.close();
    } finally {
      cleanup();
    }
  });

  it('rejects (the deployment does not start) when the nonce store cannot void', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const ledger = await openLedger(createSqliteLedgerStore({ path: join(dir, 'ledger.db') }));
      const nonces = createSqliteNonceStore({ path: join(dir, 'nonces.db'), now: () => 1_000 });
      await accepted(ledger, 'issued-unused', 'issued');
      await nonces.close();
      await expect(recordAbandonedRequests(recoveryDeps(ledger, nonces), 'restart')).rejects.toThrow(
        'nonce store closed',
      );
      // Nothing was recorded for it: it stays open for the next start.
      expect((await ledger.store.openRequests?.())?.map((r) => r.request_id)).toEqual(['issued-unused']);
      await ledger.close();
    } finally {
      cleanup();
    }
  });

  it('a ledger created before the open-request index gets it filled once on open', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const path = join(dir, 'ledger.db');
      const ledger = await openLedger(createSqliteLedgerStore({ path }));
      await accepted(ledger, 'old-open', 'accepted');
      await accepted(ledger, 'old-done', 'completed');
      await ledger.close();
      const raw = createSqliteLedgerStore({ path });
      // As a file made before the index and before schema versions: version 1 fills it.
      raw.database.exec(
        "DELETE FROM open_requests; DELETE FROM store_meta WHERE key = 'open_requests'; DROP TABLE failclosed_schema",
      );
      raw.database.close();
      const again = createSqliteLedgerStore({ path });
      expect((await again.openRequests?.())?.map((r) => r.request_id)).toEqual(['old-open']);
      await again.close();
    } finally {
      cleanup();
    }
  });
});

/**
 * A keyless Gate's request is decided by a Control Plane process its lease does not fence: a
 * sweep must not record "never ran" while a decision could still issue an envelope for it
 * (FC-INV-5). Over the real SQLite decision-claim store and an injected clock.
 */
describe('keylessMayStillIssue (a keyless Gate gone mid-call)', () => {
  const T0 = Date.UTC(2026, 0, 1);
  const acceptedAt = new Date(T0).toISOString();
  const open = (owner?: string) => ({
    accepted_index: 0,
    request_id: 'kg-1',
    trace_id: 't-kg-1',
    ...(owner === undefined ? {} : { owner }),
  });
  const acceptedEntry = {
    ...entry('gateway.accepted', 'kg-1', { tool: 'echo', client: 'agent-1' }),
    index: 0,
    prev_hash: '0'.repeat(64),
    at: acceptedAt,
    entry_hash: 'a'.repeat(64),
  };
  const decisionOf = (outcome: string) => ({
    ...acceptedEntry,
    type: 'decision' as const,
    index: 1,
    actor: { id: 'control-plane', role: 'control-plane' },
    payload: { decision_id: 'd-kg-1', outcome },
  });

  it('FC-INV-5: with no decision it claims the request, so none can begin, and lets the sweep record it; a request claimed before is left open until no decide can still run', async () => {
    const { dir, cleanup } = tempDir();
    const claims = createSqliteDecisionClaims(join(dir, 'claims.db'));
    try {
      let now = T0 + 1000;
      // The request was signed 100 s before its acceptance (a Gate with a wider tolerance).
      let signed: number | undefined = T0 - 100_000;
      const check = keylessMayStillIssue(
        claims,
        () => now,
        120_000,
        () => Promise.resolve(signed),
      );
      // Not a keyless Gate's request: nothing can be issued for it but by its owner.
      expect(await check(open(), acceptedEntry, undefined)).toBe(false);
      expect(await check(open('host:1:ab'), acceptedEntry, undefined)).toBe(false);
      // A keyless Gate's, undecided: the sweep takes the claim; a Control Plane process asked to
      // decide it now finds it taken (its decide route answers ERR_REQUEST_REPLAYED).
      expect(await check(open('gate/gone:1'), acceptedEntry, undefined)).toBe(false);
      const key = { tenant: 'acme', identity: 'agent-1', request_id: 'kg-1' };
      expect(await claims.claim(key, 'a control plane', now)).toBe(false);
      // Claimed already (a decide under way): left open while a decide could still start (the
      // signed timestamp within the tolerance) and run (90 s), with 30 s for clocks apart.
      expect(await check(open('gate/gone:1'), acceptedEntry, undefined)).toBe(true);
      now = T0 - 100_000 + 120_000 + 90_000 + 30_000;
      expect(await check(open('gate/gone:1'), acceptedEntry, undefined)).toBe(true);
      now += 1;
      expect(await check(open('gate/gone:1'), acceptedEntry, undefined)).toBe(false);
      // Its evidence not readable now: bounded from the acceptance, as if signed a Gate's
      // tolerance (taken as twice the Control Plane's) after it.
      signed = undefined;
      now = T0 + 3 * 120_000 + 90_000 + 30_000;
      expect(await check(open('gate/gone:1'), acceptedEntry, undefined)).toBe(true);
      now += 1;
      expect(await check(open('gate/gone:1'), acceptedEntry, undefined)).toBe(false);
      signed = T0 - 100_000;
      // Decided: a deny issues nothing; an allow or an escalation may still, within the grace.
      now = T0 + 1000;
      expect(await check(open('gate/gone:1'), acceptedEntry, decisionOf('deny'))).toBe(false);
      expect(await check(open('gate/gone:1'), acceptedEntry, decisionOf('allow'))).toBe(true);
      expect(await check(open('gate/gone:1'), acceptedEntry, decisionOf('pending'))).toBe(true);
      // A claim store that cannot answer (fault injected around the real one) leaves it open.
      const failing = keylessMayStillIssue(
        { claim: () => Promise.reject(new Error('claim store unavailable (fault injected)')) },
        () => now,
        120_000,
        () => Promise.resolve(signed),
      );
      expect(await failing(open('gate/other:2'), { ...acceptedEntry, request_id: 'kg-2' }, undefined)).toBe(
        true,
      );
    } finally {
      await claims.close();
      cleanup();
    }
  });
});
