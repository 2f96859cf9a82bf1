/**
 * Reads what a forensic replay needs from an audit bundle (v2 JSON Lines, docs/ledger.md "Audit
 * bundle"), streamed from disk: the policy bundle documents, the raw signed request of every
 * decision, and the entries a decision is re-derived from or compared with. Integrity is not
 * established here: `failclosed replay` runs the offline verifier over the same file first.
 * (GEI Determinism "forensic replay", OE-INV-014)
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseJson } from '../kernel/index.js';
import type { JsonObject, JsonValue } from '../kernel/index.js';
import { BUNDLE_FORMAT_V2, MAX_LINE_BYTES } from '../verify/index.js';

/** One ledger entry as the replay reads it. */
export interface ReplayEntry {
  readonly index: number;
  readonly type: string;
  readonly trace_id: string;
  readonly request_id: string;
  readonly tenant: string;
  readonly entry_hash: string;
  readonly payload: JsonObject;
}

/** What a replay reads from a bundle. */
export interface ReplayInput {
  /** Policy bundle documents by hash, as exported (the verifier checks they hash to it). */
  readonly policies: ReadonlyMap<string, JsonValue>;
  /** Raw signed request bytes by SHA-256, for the requests decisions name. */
  readonly requests: ReadonlyMap<string, Buffer>;
  /** The decision entries and the records that follow from them, in ledger order. */
  readonly entries: readonly ReplayEntry[];
  /** The bundle's scope: `range` from 0 is a complete export. */
  readonly complete: boolean;
}

/** Entry types a replay keeps: decisions, what they are compared with, and their inputs. */
const KEPT: ReadonlySet<string> = new Set([
  'decision',
  'approval.requested',
  'approval.added',
  'approval.rejected',
  'approval.flagged',
  'approval.finalized',
  'envelope.issued',
  'admin.client_registered',
  'session.tainted',
  // A background call's envelope grants the tool's background time limit (docs/jobs.md): its
  // acceptance says it was asked so (older ledgers: only its `gateway.queued` does). Only those
  // acceptances are kept.
  'gateway.accepted',
  'gateway.queued',
]);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function entryOf(v: unknown): ReplayEntry | undefined {
  if (!isObj(v)) return undefined;
  const { index, type, trace_id, request_id, tenant, entry_hash, payload } = v;
  if (!Number.isSafeInteger(index) || typeof type !== 'string' || !isObj(payload)) return undefined;
  if (typeof trace_id !== 'string' || typeof request_id !== 'string' || typeof tenant !== 'string')
    return undefined;
  if (typeof entry_hash !== 'string') return undefined;
  return {
    index: index as number,
    type,
    trace_id,
    request_id,
    tenant,
    entry_hash,
    payload: payload as JsonObject,
  };
}

/**
 * Reads the v2 bundle at `path`, or returns why it cannot be used (not v2, malformed record,
 * truncated). Memory: the kept entries and the requests decisions name, plus one chunk of
 * evidence.
 */
export async function readReplayInput(path: string): Promise<ReplayInput | string> {
  const policies = new Map<string, JsonValue>();
  const requests = new Map<string, Buffer>();
  const entries: ReplayEntry[] = [];
  // Evidence is written before the entries of its chunk that name it.
  let chunk = new Map<string, string>();
  let inEntries = false;
  let complete = false;
  let header = false;
  let ended = false;
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  try {
    for await (const line of lines) {
      if (line.length === 0) continue;
      if (ended) return 'records after the end record';
      if (line.length > MAX_LINE_BYTES) return 'a record is longer than any the exporter writes';
      let rec: JsonValue;
      try {
        // Attacker-controlled: bundle bytes.
        rec = parseJson(line, { maxBytes: MAX_LINE_BYTES });
      } catch {
        return 'a record is not strict JSON';
      }
      if (!isObj(rec)) return 'a record is not a JSON object';
      if (!header) {
        if (rec['record'] !== 'header' || rec['format'] !== BUNDLE_FORMAT_V2)
          return `not a ${BUNDLE_FORMAT_V2} bundle (export one with failclosed ledger export)`;
        const scope = rec['scope'];
        complete = isObj(scope) && scope['kind'] === 'range' && scope['from'] === 0;
        header = true;
        continue;
      }
      const kind = rec['record'];
      if (kind === 'entry') {
        inEntries = true;
        const e = entryOf(rec['entry']);
        if (e === undefined) return 'an entry record is malformed';
        if (!KEPT.has(e.type)) continue;
        // Of the acceptances, only those of background asks are an input (one per call otherwise).
        if (e.type === 'gateway.accepted' && e.payload['background'] !== true) continue;
        if (e.type === 'decision') {
          const sha = e.payload['request_sha256'];
          const body = typeof sha === 'string' ? chunk.get(sha) : undefined;
          if (typeof sha === 'string' && body !== undefined) requests.set(sha, Buffer.from(body, 'base64'));
        }
        entries.push(e);
        continue;
      }
      if (inEntries) {
        chunk = new Map();
        inEntries = false;
      }
      if (kind === 'policy_bundle') {
        if (typeof rec['hash'] !== 'string' || !('document' in rec))
          return 'a policy bundle record is malformed';
        policies.set(rec['hash'], rec['document']);
      } else if (kind === 'evidence') {
        if (typeof rec['sha256'] !== 'string' || typeof rec['body_b64'] !== 'string')
          return 'an evidence record is malformed';
        chunk.set(rec['sha256'], rec['body_b64']);
      } else if (kind === 'end') ended = true;
      else if (kind !== 'inclusion') return 'an unknown record';
    }
  } catch {
    return 'cannot read the bundle file';
  }
  if (!header) return 'an empty file';
  if (!ended) return 'the bundle is truncated (no end record)';
  return { policies, requests, entries, complete };
}
