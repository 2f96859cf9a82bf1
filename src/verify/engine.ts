/**
 * The verification engine: runs the checklist over a bundle read run by run, in bounded memory
 * whatever the bundle's size (SPEC §5; docs/ledger.md "Audit bundle" and "Verifying at scale").
 * `entries` checks see each run of consecutive entries as it is read; `requests` checks see
 * whole requests, grouped by request id and held only until the request is settled (its outcome
 * recorded and {@link REQUEST_LAG} more entries read); `bundle` checks run once at the end on the
 * Merkle summary. A bundle given whole (v1) is one run and one request group, exactly as before.
 */
import { settlesAttempt } from '../kernel/index.js';
import type { JsonObject, JsonValue } from '../kernel/index.js';
import type { Bundle } from './bundle.js';
import {
  createContext,
  viewsOf,
  type EntryView,
  type MerkleSummary,
  type SegmentPlace,
  type SharedFacts,
  type VerifyContext,
} from './context.js';
import { entryLeaf } from './entry-format.js';
import { createMerkleAccumulator, type MerkleAccumulator } from './merkle-accumulator.js';
import { countAbandoned, type AbandonedTally } from './report-build.js';
import type { CheckUnit, Finding, VerifyCheck, VerifyOptions } from './types.js';

/** Entries read past a settled request before its group is checked (late records of the same request join it). */
export const REQUEST_LAG = 4096;
/** Entries of settled requests checked together. */
const REQUEST_BATCH = 2048;
/** Findings kept per check for the report (sorted by position); the rest are only counted. */
const KEEP_FINDINGS = 1000;

/**
 * Records every request group sees: client keys, issuer key rotation and revocation, and the
 * schedules a later run stands on (docs/schedules.md).
 */
const KEY_RECORD_TYPES: ReadonlySet<string> = new Set([
  'admin.client_registered',
  'admin.key_rotated',
  'admin.key_revoked',
  'schedule.created',
]);
/**
 * Key records that also belong to their own request's group: a `schedule.created` names its
 * creation's decision, which must be found with it (`checks/schedules.ts`).
 */
const GROUPED_KEY_RECORDS: ReadonlySet<string> = new Set(['schedule.created']);
/** Records of reads and exports: no request check looks at them. */
const UNGROUPED_PREFIX = 'audit.';
const HEX64 = /^[0-9a-f]{64}$/;

/** What one check found over every segment. */
export interface CheckTally {
  readonly check: VerifyCheck;
  calls: number;
  skipped: number;
  findings: Finding[];
  undecided: Finding[];
  moreFindings: number;
  moreUndecided: number;
  readonly seen: Set<string>;
  /** What the check noted on its last segment (`VerifyCheck.notes`), for the report. */
  notes: readonly string[];
}

/** Runs requests-unit checks on a group; the inline runner calls the checks in this thread. */
export interface RequestRunner {
  /** `owned`: positions of records every group sees whose own request's group is in this batch. */
  run(
    bundle: Bundle,
    views: readonly EntryView[],
    positions: readonly number[],
    owned: readonly number[],
  ): void;
  /** Resolves once every group given to `run` has been checked. */
  drain(): Promise<void>;
}

/** The entries of one request: every entry sharing its request id or one of its trace ids. */
interface Group {
  views: EntryView[];
  raws: JsonValue[];
  evidence: Record<string, JsonValue>;
  keys: string[];
  settled: boolean;
  /** Position of the latest outcome record, which decides `settled`. */
  outcomeAt: number;
  last: number;
}

/** Adds one call's findings to a tally (split into violations and undecided links as `runCheck` did). */
export function tallyCall(
  t: CheckTally,
  ctx: Pick<VerifyContext, 'complete'>,
  all: readonly Finding[],
): void {
  t.calls++;
  for (const f of all) {
    const undecided = !ctx.complete && f.partial === true;
    let g: Finding = f;
    if (ctx.complete && f.partial === true) {
      const { partial: _p, ...rest } = f;
      g = rest;
    }
    // A finding naming no entry (e.g. an undeclared executor) is reported once, however many segments repeat it.
    if (g.position === undefined) {
      const key = `${undecided ? 'u' : 'f'}\u0000${g.code}\u0000${g.message}`;
      if (t.seen.has(key)) continue;
      t.seen.add(key);
    }
    if (undecided) {
      if (t.undecided.length < KEEP_FINDINGS) t.undecided.push(g);
      else t.moreUndecided++;
    } else if (t.findings.length < KEEP_FINDINGS) t.findings.push(g);
    else t.moreFindings++;
  }
}

/** Runs one check on one segment: findings, or a CHECK_ERROR when it throws (fail closed). */
export function runOn(t: CheckTally, ctx: VerifyContext): void {
  let all: readonly Finding[];
  try {
    if (t.check.applies !== undefined && !t.check.applies(ctx)) {
      t.calls++;
      t.skipped++;
      return;
    }
    all = t.check.run(ctx);
    if (ctx.segment.final && t.check.notes !== undefined) t.notes = t.check.notes(ctx);
  } catch {
    // A check that cannot finish has not shown the property holds: fail closed.
    all = [{ code: 'CHECK_ERROR', message: `check ${t.check.id} could not complete` }];
  }
  tallyCall(t, ctx, all);
}

/** A fresh tally for each check. */
export function tallies(checks: readonly VerifyCheck[]): CheckTally[] {
  return checks.map((check) => ({
    check,
    calls: 0,
    skipped: 0,
    findings: [],
    undecided: [],
    moreFindings: 0,
    moreUndecided: 0,
    seen: new Set(),
    notes: [],
  }));
}

const unitOf = (c: VerifyCheck): CheckUnit => c.unit ?? 'entries';

/** The engine for one streamed bundle. */
export interface VerifyEngine {
  /** One run of consecutive entries with the evidence and inclusion proofs of its chunk. */
  entries(raws: readonly JsonValue[], evidence: JsonObject, inclusion: readonly JsonValue[]): void;
  /** A policy bundle document (collected for the request checks). */
  policyBundle(hash: string, doc: JsonValue): void;
  /** Checks what is left, runs the whole-bundle checks, and returns the tallies in checklist order. */
  finish(): Promise<EngineResult>;
  /** The same, when the request checks run in this thread (the inline runner). */
  finishSync(): EngineResult;
}

/** What the engine found over a whole bundle. */
export interface EngineResult {
  readonly tallies: readonly CheckTally[];
  readonly entries: number;
  readonly first?: number;
  readonly last?: number;
  /** The `request.abandoned` records read (SPEC §5: the report says how many may have run). */
  readonly abandoned: AbandonedTally;
}

/** Options of {@link createVerifyEngine}. */
export interface EngineSetup {
  /** The bundle's header members; `entries`, `evidence` and `inclusion` are ignored. */
  readonly header: Bundle;
  readonly options: VerifyOptions;
  readonly checks: readonly VerifyCheck[];
  readonly shared: SharedFacts;
  /** Merkle prefix sizes to record (the `--since` checkpoint's size). */
  readonly prefixSizes?: readonly number[];
  /** Entries read past a settled request before it is checked; default {@link REQUEST_LAG}. */
  readonly requestLag?: number;
  /** Entries of settled requests checked together; default 2048. */
  readonly requestBatch?: number;
  /** Runs request groups elsewhere (worker threads); default inline. */
  readonly requestRunner?: (t: readonly CheckTally[], shared: SharedFacts) => RequestRunner;
}

/** The request checks run in this thread. */
export function inlineRequestRunner(
  ts: readonly CheckTally[],
  shared: SharedFacts,
  options: VerifyOptions,
  entriesSeen: () => number,
): RequestRunner {
  return {
    run(bundle, views, positions, owned) {
      const place: SegmentPlace = {
        shared,
        unit: 'requests',
        final: false,
        positions,
        owned,
        entriesSeen: entriesSeen(),
        merkle: () => undefined,
      };
      const ctx = createContext(bundle, options, place, views);
      for (const t of ts) runOn(t, ctx);
    },
    drain: () => Promise.resolve(),
  };
}

/** Creates the engine (see the module comment). */
export function createVerifyEngine(setup: EngineSetup): VerifyEngine {
  const { header, options, shared } = setup;
  const all = tallies(setup.checks);
  const byUnit = (u: CheckUnit): CheckTally[] => all.filter((t) => unitOf(t.check) === u);
  const entryChecks = byUnit('entries');
  const requestChecks = byUnit('requests');
  const bundleChecks = byUnit('bundle');
  const policyBundles: Record<string, JsonValue> = { ...header.policyBundles };
  const lag = setup.requestLag ?? REQUEST_LAG;
  const batchMax = setup.requestBatch ?? REQUEST_BATCH;
  let merkle: MerkleAccumulator | undefined = createMerkleAccumulator(setup.prefixSizes ?? []);
  let seen = 0;
  let first: number | undefined;
  let last: number | undefined;
  const abandoned: AbandonedTally = { count: 0, mayHaveRun: 0 };
  const keyRecords: { view: EntryView; raw: JsonValue }[] = [];
  const open = new Map<string, Group>(); // request and trace keys → their group
  const settled = new Set<Group>(); // settled groups, least recently touched first
  let batch: Group[] = [];
  let batchSize = 0;
  let batchesSent = 0;
  const runner =
    setup.requestRunner?.(requestChecks, shared) ??
    inlineRequestRunner(requestChecks, shared, options, () => seen);

  const segmentBundle = (
    entries: readonly JsonValue[],
    evidence: JsonObject,
    inclusion: readonly JsonValue[],
    final: boolean,
  ): Bundle => ({
    ...header,
    entries,
    evidence,
    inclusion: final ? header.inclusion : inclusion,
    anchors: header.anchors,
    policyBundles,
  });

  const runEntries = (views: readonly EntryView[], b: Bundle, final: boolean): void => {
    if (entryChecks.length === 0) return;
    const place: SegmentPlace = {
      shared,
      unit: 'entries',
      final,
      entriesSeen: seen,
      merkle: () => undefined,
      positions: views.map((v) => v.position),
    };
    const ctx = createContext(b, options, place, views);
    for (const t of entryChecks) runOn(t, ctx);
  };

  const checkBatch = (): void => {
    if (batch.length === 0 && batchesSent > 0) return;
    batchesSent++;
    const inGroups = new Set<number>();
    for (const g of batch) for (const view of g.views) inGroups.add(view.position);
    // A key record whose own group is in the batch comes once, with that group.
    const owned = keyRecords.filter((k) => inGroups.has(k.view.position)).map((k) => k.view.position);
    const items: { view: EntryView; raw: JsonValue }[] = keyRecords.filter(
      (k) => !inGroups.has(k.view.position),
    );
    const evidence: Record<string, JsonValue> = {};
    for (const g of batch) {
      g.views.forEach((view, i) => items.push({ view, raw: g.raws[i] ?? null }));
      Object.assign(evidence, g.evidence);
    }
    items.sort((a, b) => a.view.position - b.view.position);
    const b = segmentBundle(
      items.map((x) => x.raw),
      evidence,
      [],
      false,
    );
    runner.run(
      b,
      items.map((x) => x.view),
      items.map((x) => x.view.position),
      owned,
    );
    batch = [];
    batchSize = 0;
  };

  const flushSettled = (force: boolean): void => {
    for (const g of settled) {
      if (!force && seen - g.last < lag) break;
      settled.delete(g);
      for (const k of g.keys) open.delete(k);
      batch.push(g);
      batchSize += g.views.length;
      if (batchSize >= batchMax) checkBatch();
    }
  };

  /** Merges `b` into `a` (an entry named both: one request over two traces, or an edited id). */
  const merge = (a: Group, b: Group): Group => {
    a.views = a.views.concat(b.views);
    a.raws = a.raws.concat(b.raws);
    Object.assign(a.evidence, b.evidence);
    for (const k of b.keys) {
      open.set(k, a);
      a.keys.push(k);
    }
    if (b.outcomeAt > a.outcomeAt) {
      a.outcomeAt = b.outcomeAt;
      a.settled = b.settled;
    }
    a.last = Math.max(a.last, b.last);
    settled.delete(b);
    return a;
  };

  const group = (view: EntryView, raw: JsonValue, evidence: JsonObject): void => {
    const e = view.entry;
    if (e === undefined) return;
    if (KEY_RECORD_TYPES.has(e.type)) {
      keyRecords.push({ view, raw });
      if (!GROUPED_KEY_RECORDS.has(e.type)) return;
    }
    if (e.type.startsWith(UNGROUPED_PREFIX)) return;
    const keys = [
      e.request_id !== '' ? `r:${e.request_id}` : '',
      e.trace_id !== '' ? `t:${e.trace_id}` : '',
    ].filter((k) => k !== '');
    // A record that must be checked with its own request names none: it is a group of its own,
    // where what it names is looked for (and not found), never a record no batch owns.
    if (keys.length === 0 && GROUPED_KEY_RECORDS.has(e.type)) keys.push(`p:${view.position}`);
    if (keys.length === 0) return;
    let g: Group | undefined;
    for (const k of keys) {
      const h = open.get(k);
      if (h === undefined) continue;
      g = g === undefined || g === h ? h : merge(g, h);
    }
    if (g === undefined) {
      g = { views: [], raws: [], evidence: {}, keys: [], settled: false, outcomeAt: -1, last: view.position };
    }
    for (const k of keys)
      if (open.get(k) !== g) {
        open.set(k, g);
        g.keys.push(k);
      }
    g.views.push(view);
    g.raws.push(raw);
    g.last = view.position;
    for (const [k, v] of Object.entries(e.payload))
      if (k.endsWith('_sha256') && typeof v === 'string' && HEX64.test(v) && evidence[v] !== undefined)
        g.evidence[v] = evidence[v];
    if (settlesAttempt(e)) {
      g.outcomeAt = view.position;
      // A pending answer (approval awaited) is not the end: the retry joins the same request.
      g.settled = e.type === 'request.abandoned' || e.payload['outcome'] !== 'pending';
    } else if (
      e.type === 'gateway.failed' &&
      g.outcomeAt === -1 &&
      !g.views.some((v) => v.entry?.type === 'gateway.accepted')
    ) {
      // A refusal before acceptance (a replay, a bad signature) of a request nothing else was
      // recorded for settles it; one in the trace of an attempt in flight or awaiting approval
      // (a replay of its bytes) does not: that attempt's records must stay together.
      g.outcomeAt = view.position;
      g.settled = true;
    }
    settled.delete(g);
    if (g.settled) settled.add(g);
  };

  return {
    entries(raws, evidence, inclusion) {
      const start = seen;
      const views = viewsOf(
        raws,
        raws.map((_, i) => start + i),
      );
      seen += raws.length;
      for (const v of views) {
        if (v.entry === undefined) merkle = undefined;
        else {
          countAbandoned(abandoned, v.entry);
          merkle?.push(entryLeaf(v.entry.entry_hash));
          first ??= v.entry.index;
          last = v.entry.index;
        }
      }
      runEntries(views, segmentBundle(raws, evidence, inclusion, false), false);
      views.forEach((v, i) => group(v, raws[i] ?? null, evidence));
      flushSettled(false);
    },
    policyBundle(hash, doc) {
      policyBundles[hash] = doc;
    },
    async finish() {
      close();
      await runner.drain();
      return summarize();
    },
    finishSync() {
      close();
      return summarize();
    },
  };

  function close(): void {
    runEntries([], segmentBundle([], {}, [], true), true);
    for (const g of open.values()) settled.add(g);
    flushSettled(true);
    checkBatch();
  }

  function summarize(): EngineResult {
    const summary: MerkleSummary | undefined = merkle?.summary();
    const place: SegmentPlace = {
      shared,
      unit: 'bundle',
      final: true,
      entriesSeen: seen,
      merkle: () => summary,
    };
    const ctx = createContext(segmentBundle([], {}, [], true), options, place, []);
    for (const t of bundleChecks) runOn(t, ctx);
    return {
      tallies: all,
      entries: seen,
      abandoned,
      ...(first !== undefined ? { first } : {}),
      ...(last !== undefined ? { last } : {}),
    };
  }
}
