/**
 * Reads a v2 audit bundle (`failclosed.audit-bundle/v2`, docs/ledger.md "Audit bundle"): JSON
 * Lines, a header record, then chunks (policy bundle, evidence and inclusion records followed by
 * the entries that use them), then an end record. Records are fed to the engine as they come, so
 * memory holds one chunk and the requests not yet settled, whatever the bundle's size (SPEC §5).
 * Structure problems (no header, unknown record, a missing end record) make the bundle unusable
 * (exit 2); everything inside is judged by the checks.
 */
import { FailclosedError, parseJson, type JsonObject, type JsonValue } from '../kernel/index.js';
import { BUNDLE_FORMAT, BUNDLE_FORMAT_V2, parseBundle, type Bundle } from './bundle.js';
import { createSharedFacts } from './context.js';
import { createVerifyEngine, type EngineResult, type EngineSetup, type VerifyEngine } from './engine.js';
import { buildReport } from './report-build.js';
import type { VerifyOptions, VerifyReport } from './types.js';
import { pinsRoots, selectChecks, sinceSize, trustSource, unusable } from './select.js';

/** Largest record line (a policy bundle or evidence blob, base64) accepted. */
export const MAX_LINE_BYTES = 16 * 1024 * 1024;
/** Largest run of entries handed to the checks at once. */
const RUN_ENTRIES = 2048;
/** Most bytes of evidence, proofs and policy records one chunk may hold before its entries. */
const MAX_CHUNK_BYTES = 256 * 1024 * 1024;

const isObject = (v: JsonValue | undefined): v is JsonObject =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** The header record as a bundle without entries, or the reason it is unusable. */
function parseHeader(line: string): { bundle: Bundle; proofs: boolean } | string {
  let v: JsonValue;
  try {
    // Attacker-controlled: the header; strict (duplicate keys, depth, size).
    v = parseJson(line, { maxBytes: MAX_LINE_BYTES, maxDepth: 64 });
  } catch (err) {
    return `header is not strict JSON (${err instanceof FailclosedError ? err.code : 'unreadable'})`;
  }
  if (!isObject(v) || v['record'] !== 'header') return 'the first line is not a header record';
  if (v['format'] !== BUNDLE_FORMAT_V2) return `format is not ${BUNDLE_FORMAT_V2}`;
  const proofs = v['inclusion_proofs'];
  if (typeof proofs !== 'boolean') return 'header.inclusion_proofs is not a boolean';
  const b = parseBundle({
    format: BUNDLE_FORMAT,
    origin: v['origin'] ?? null,
    ledger_key: v['ledger_key'] ?? null,
    scope: v['scope'] ?? null,
    checkpoint: v['checkpoint'] ?? null,
    entries: [],
    anchors: v['anchors'] ?? null,
    // Inclusion proofs of the anchors travel in the header; those of entries precede them in their chunk.
    proofs: { inclusion: v['anchor_proofs'] ?? [] },
    older_checkpoints: v['older_checkpoints'] ?? null,
    evidence: {},
    jwks: v['jwks'] ?? null,
    policy_bundles: {},
    exports: {},
    executor: v['executor'] ?? null,
  });
  return typeof b === 'string' ? b : { bundle: b, proofs };
}

/** A push reader over the lines of one v2 bundle. */
export interface V2Reader {
  /** Takes the next line; returns the reason the bundle is unusable, if it now is. */
  line(text: string): string | undefined;
  /** True once the header was read. */
  readonly started: boolean;
  /** The report, once every line was given. */
  finish(): Promise<VerifyReport>;
  /** The same, when the request checks run in this thread. */
  finishSync(): VerifyReport;
}

/** How a reader cuts the bundle: runs of entries, and when settled requests are checked (defaults suit any size). */
export interface StreamLimits {
  readonly runEntries?: number;
  readonly requestLag?: number;
  readonly requestBatch?: number;
  /** Given the header, runs the request checks elsewhere (a worker thread); default in this thread. */
  readonly requestRunnerFor?: (header: Bundle, proofs: boolean) => NonNullable<EngineSetup['requestRunner']>;
}

/** Creates a reader for one bundle. */
export function createV2Reader(opts: VerifyOptions, limits: StreamLimits = {}): V2Reader | VerifyReport {
  const runEntries = limits.runEntries ?? RUN_ENTRIES;
  const checks = selectChecks(opts);
  if (typeof checks === 'string') return unusable(checks, opts);
  let engine: VerifyEngine | undefined;
  let header: Bundle | undefined;
  let proofs = false;
  let keyPinned = pinsRoots(opts);
  let complete = false;
  let checkpointSize: number | undefined;
  let entries: JsonValue[] = [];
  let evidence: Record<string, JsonValue> = {};
  let inclusion: JsonValue[] = [];
  let chunkBytes = 0;
  let chunkHasEntries = false;
  let count = 0;
  let ended = false;
  let broken: string | undefined;

  const flushRun = (): void => {
    if (entries.length === 0 || engine === undefined) return;
    engine.entries(entries, evidence, inclusion);
    entries = [];
  };
  const newChunk = (): void => {
    flushRun();
    evidence = {};
    inclusion = [];
    chunkBytes = 0;
    chunkHasEntries = false;
  };

  const record = (text: string): string | undefined => {
    if (ended) return 'a record follows the end record';
    let v: JsonValue;
    try {
      // Attacker-controlled: one record. Every member that matters is bound by a digest or a
      // signature over the parsed value (entry hash and Merkle root, evidence and policy digests,
      // proofs against the signed root), so the native parser's duplicate-key leniency cannot
      // smuggle an unverified value past a check.
      v = JSON.parse(text) as JsonValue;
    } catch {
      return `record ${count + 1} is not JSON`;
    }
    if (!isObject(v)) return 'a record is not an object';
    const kind = v['record'];
    if (kind === 'entry') {
      entries.push(v['entry'] ?? null);
      chunkHasEntries = true;
      count++;
      if (entries.length >= runEntries) flushRun();
      return undefined;
    }
    // A record after entries opens the next chunk: the previous chunk's evidence and proofs are dropped.
    if (chunkHasEntries) newChunk();
    chunkBytes += text.length;
    if (chunkBytes > MAX_CHUNK_BYTES) return 'a chunk holds more than 256 MiB before its entries';
    if (kind === 'evidence') {
      const sha = v['sha256'];
      if (typeof sha !== 'string') return 'an evidence record names no sha256';
      evidence[sha] = { media_type: v['media_type'] ?? null, body_b64: v['body_b64'] ?? null };
      return undefined;
    }
    if (kind === 'inclusion') {
      if (!proofs) return 'an inclusion record in a bundle whose header declares none';
      inclusion.push({ index: v['index'] ?? null, hashes: v['hashes'] ?? null });
      return undefined;
    }
    if (kind === 'policy_bundle') {
      const hash = v['hash'];
      if (typeof hash !== 'string') return 'a policy_bundle record names no hash';
      engine?.policyBundle(hash, v['document'] ?? null);
      return undefined;
    }
    if (kind === 'end') {
      if (v['entries'] !== count)
        return `the end record counts ${JSON.stringify(v['entries'])} entries; read ${count}`;
      ended = true;
      return undefined;
    }
    return `unknown record ${JSON.stringify(kind)}`;
  };

  return {
    get started() {
      return engine !== undefined;
    },
    line(text) {
      if (broken !== undefined) return broken;
      if (text.length === 0) return undefined;
      if (text.length > MAX_LINE_BYTES) return (broken = 'a line is longer than 16 MiB');
      if (engine === undefined) {
        const h = parseHeader(text);
        if (typeof h === 'string') return (broken = h);
        header = h.bundle;
        proofs = h.proofs;
        const shared = createSharedFacts(header, opts, proofs);
        keyPinned = shared.key.pinned;
        complete = shared.complete;
        checkpointSize = shared.checkpoint.verified?.size;
        const since = opts.since === undefined ? undefined : sinceSize(opts.since);
        engine = createVerifyEngine({
          header,
          options: opts,
          checks,
          shared,
          ...(since !== undefined ? { prefixSizes: [since] } : {}),
          ...(limits.requestLag !== undefined ? { requestLag: limits.requestLag } : {}),
          ...(limits.requestBatch !== undefined ? { requestBatch: limits.requestBatch } : {}),
          ...(limits.requestRunnerFor !== undefined
            ? { requestRunner: limits.requestRunnerFor(header, proofs) }
            : {}),
        });
        return undefined;
      }
      broken = record(text);
      return broken;
    },
    async finish() {
      const done = closeReader();
      if (typeof done !== 'function') return done;
      return done(await (engine as VerifyEngine).finish());
    },
    finishSync() {
      const done = closeReader();
      if (typeof done !== 'function') return done;
      return done((engine as VerifyEngine).finishSync());
    },
  };

  function closeReader(): VerifyReport | ((r: EngineResult) => VerifyReport) {
    if (broken !== undefined) return unusable(`bundle unusable: ${broken}`, opts);
    if (engine === undefined || header === undefined) return unusable('bundle unusable: no header', opts);
    if (!ended) return unusable('bundle unusable: truncated (no end record)', opts);
    flushRun();
    const origin = header.origin;
    return (r) =>
      buildReport({
        tallies: r.tallies,
        sorted: true,
        origin,
        keyPinned,
        trust: trustSource(opts),
        abandoned: r.abandoned,
        complete: complete && checkpointSize !== undefined && r.entries === checkpointSize,
        coverage: {
          entries: r.entries,
          ...(r.first !== undefined ? { first: r.first } : {}),
          ...(r.last !== undefined ? { last: r.last } : {}),
          ...(checkpointSize !== undefined ? { checkpointSize } : {}),
        },
      });
  }
}

/** Verifies v2 bundle lines held in memory, with the request checks in this thread. */
export function readV2Lines(
  lines: Iterable<string>,
  opts: VerifyOptions,
  limits: Omit<StreamLimits, 'requestRunnerFor'> = {},
): VerifyReport {
  const reader = createV2Reader(opts, limits);
  if (!('line' in reader)) return reader;
  for (const l of lines) if (reader.line(l) !== undefined) break;
  return reader.finishSync();
}
