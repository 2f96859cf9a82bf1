/**
 * The request checks in a worker thread (SPEC §5; docs/ledger.md "Verifying at scale"): the
 * main thread reads, parses and hashes entries while this thread verifies the Ed25519 signatures
 * of requests, envelopes and approvals, batch by batch, so verification uses two cores. Its
 * state (nonces seen, tallies) lives here until the main thread asks for it.
 */
import { parentPort } from 'node:worker_threads';
import type { JsonObject, JsonValue } from '../kernel/index.js';
import type { Bundle } from './bundle.js';
import { VERIFY_CHECKS } from './checks.js';
import { createContext, createSharedFacts, viewsOf, type SharedFacts } from './context.js';
import { runOn, tallies, type CheckTally } from './engine.js';
import type { Finding, VerifyOptions } from './types.js';

/** Messages from the main thread. */
export type WorkerRequest =
  | {
      readonly kind: 'init';
      readonly header: Bundle;
      readonly options: VerifyOptions;
      readonly checks: readonly string[];
      readonly proofs: boolean;
    }
  | {
      readonly kind: 'batch';
      readonly entries: readonly JsonValue[];
      readonly positions: readonly number[];
      /** Positions of records every group sees whose own request is in this batch. */
      readonly owned: readonly number[];
      readonly evidence: JsonObject;
      readonly policyBundles?: JsonObject;
      readonly entriesSeen: number;
    }
  | { readonly kind: 'done' };

/** A tally without its check (what crosses the thread boundary). */
export interface TallyData {
  readonly id: string;
  readonly calls: number;
  readonly skipped: number;
  readonly findings: readonly Finding[];
  readonly undecided: readonly Finding[];
  readonly moreFindings: number;
  readonly moreUndecided: number;
  readonly seen: readonly string[];
}

/** Messages to the main thread. */
export type WorkerAnswer =
  { readonly kind: 'ack' } | { readonly kind: 'tallies'; readonly tallies: readonly TallyData[] };

let header: Bundle | undefined;
let options: VerifyOptions = {};
let shared: SharedFacts | undefined;
let ts: CheckTally[] = [];
let policyBundles: JsonObject = {};

function handle(m: WorkerRequest): WorkerAnswer {
  if (m.kind === 'init') {
    header = m.header;
    options = m.options;
    shared = createSharedFacts(m.header, m.options, m.proofs);
    ts = tallies(VERIFY_CHECKS.filter((c) => m.checks.includes(c.id)));
    return { kind: 'ack' };
  }
  if (m.kind === 'batch') {
    if (header === undefined || shared === undefined) throw new Error('batch before init');
    if (m.policyBundles !== undefined) policyBundles = m.policyBundles;
    const bundle: Bundle = {
      ...header,
      entries: m.entries,
      evidence: m.evidence,
      inclusion: [],
      anchors: [],
      policyBundles,
    };
    const place = {
      shared,
      unit: 'requests' as const,
      final: false,
      positions: m.positions,
      owned: m.owned,
      entriesSeen: m.entriesSeen,
      merkle: () => undefined,
    };
    const ctx = createContext(bundle, options, place, viewsOf(m.entries, m.positions));
    for (const t of ts) runOn(t, ctx);
    return { kind: 'ack' };
  }
  return {
    kind: 'tallies',
    tallies: ts.map((t) => ({
      id: t.check.id,
      calls: t.calls,
      skipped: t.skipped,
      findings: t.findings,
      undecided: t.undecided,
      moreFindings: t.moreFindings,
      moreUndecided: t.moreUndecided,
      seen: [...t.seen],
    })),
  };
}

parentPort?.on('message', (m: WorkerRequest) => {
  parentPort?.postMessage(handle(m));
});
