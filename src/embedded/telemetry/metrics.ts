/**
 * Prometheus metrics of one composition (docs/deployment.md "Observability"), in a registry of
 * its own: several gates in one process (tests) never share or collide. Labels are bounded sets
 * only: outcome, denial code (the catalog, docs/denial-codes.md), stage, ingress and breaker name.
 * No tenant, identity, tool or request label: tool names come from the caller before they are
 * checked, and tenants are unbounded.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CallEnd, CallStage } from '../../kernel/index.js';

/** Seconds buckets from 0.25 ms to 30 s: a governed call is milliseconds, an approval wait minutes. */
const SECONDS = [0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const BATCH = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/** The instruments of one composition. */
export interface Metrics {
  readonly registry: Registry;
  stage(stage: CallStage, seconds: number): void;
  callEnded(end: CallEnd): void;
  ledgerBatch(size: number, seconds: number, failed: boolean): void;
  nonceStore(seconds: number): void;
  breakerTrip(breaker: string): void;
  /** The exposition text (`text/plain; version=0.0.4`). */
  text(): Promise<string>;
}

/** Creates the instruments in a fresh registry; `processMetrics` adds Node's own (heap, event loop, CPU). */
export function createMetrics(options: { readonly processMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.processMetrics === true) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const calls = new Counter({
    name: 'failclosed_calls_total',
    help: 'Governed calls answered by the Gate, by outcome (executed, deny, pending) and denial code.',
    labelNames: ['outcome', 'code', 'ingress'] as const,
    registers,
  });
  const shed = new Counter({
    name: 'failclosed_shed_calls_total',
    help: 'Calls refused at the in-flight limit (ERR_OVERLOADED) before any work.',
    registers,
  });
  const stages = new Histogram({
    name: 'failclosed_stage_duration_seconds',
    help: 'Duration of each stage of a governed call (stage "call" is the whole call at the Gate).',
    labelNames: ['stage'] as const,
    buckets: SECONDS,
    registers,
  });
  const batchSize = new Histogram({
    name: 'failclosed_ledger_batch_size',
    help: 'Writes per ledger group commit (PostgreSQL: entries and evidence of a batch; SQLite: every write of the shared transaction).',
    buckets: BATCH,
    registers,
  });
  const batchSeconds = new Histogram({
    name: 'failclosed_ledger_commit_duration_seconds',
    help: 'Ledger commit latency (PostgreSQL: writing a batch; SQLite: from COMMIT until the log fsync ended).',
    buckets: SECONDS,
    registers,
  });
  const batchFailures = new Counter({
    name: 'failclosed_ledger_commit_failures_total',
    help: 'Ledger batches that were not confirmed (their calls were denied).',
    registers,
  });
  const nonce = new Histogram({
    name: 'failclosed_nonce_store_duration_seconds',
    help: 'Time for the envelope nonce store to answer a consumption.',
    buckets: SECONDS,
    registers,
  });
  const trips = new Counter({
    name: 'failclosed_breaker_trips_total',
    help: 'Circuit breaker trips (OE-INV-021), by breaker.',
    labelNames: ['breaker'] as const,
    registers,
  });
  // Label children resolved once: observing is then one call with no label lookup.
  const stageChild = new Map<CallStage, { observe(v: number): void }>();
  return {
    registry,
    stage(stage, seconds) {
      let h = stageChild.get(stage);
      if (h === undefined) {
        h = stages.labels(stage);
        stageChild.set(stage, h);
      }
      h.observe(seconds);
    },
    callEnded(end) {
      calls.inc({ outcome: end.outcome, code: end.code ?? 'none', ingress: end.ingress });
      if (end.code === 'ERR_OVERLOADED') shed.inc();
    },
    ledgerBatch(size, seconds, failed) {
      if (failed) {
        batchFailures.inc();
        return;
      }
      batchSize.observe(size);
      batchSeconds.observe(seconds);
    },
    nonceStore(seconds) {
      nonce.observe(seconds);
    },
    breakerTrip(breaker) {
      trips.inc({ breaker });
    },
    text: () => registry.metrics(),
  };
}

/** The ledger process's own instruments (`serve ledger`, docs/deployment.md "The ledger process"). */
export interface LedgerProcessMetrics {
  /** A follow of the shared ledger failed (unreadable, or no longer the verified chain). */
  followFailed(): void;
  /** A peer was refused at or after the TLS handshake, by reason (a bounded set). */
  refused(reason: string): void;
}

/** Registers the ledger process's instruments in `metrics`' registry; `verified` is read at each scrape. */
export function ledgerProcessMetrics(metrics: Metrics, verified: () => number): LedgerProcessMetrics {
  const registers = [metrics.registry];
  new Gauge({
    name: 'failclosed_ledger_verified_entries',
    help: 'Entries of the shared ledger this ledger process has read and verified (its checkpoints cover at most these).',
    registers,
    collect() {
      this.set(verified());
    },
  });
  const failures = new Counter({
    name: 'failclosed_ledger_follow_failures_total',
    help: 'Follows of the shared ledger that failed: unreadable, or no longer the verified chain (no checkpoint is signed meanwhile).',
    registers,
  });
  const refusals = new Counter({
    name: 'failclosed_transport_refusals_total',
    help: 'Peers refused at or right after the mutual-TLS handshake, by reason.',
    labelNames: ['reason'] as const,
    registers,
  });
  return {
    followFailed: () => failures.inc(),
    refused: (reason) => refusals.inc({ reason }),
  };
}
