/**
 * The ledger entry: its shape, its hash and its Merkle leaf (SPEC §4, GEI "tamper-evident audit
 * chain", OE-INV-016). docs/ledger.md describes the format for auditors.
 */
import {
  FailclosedError,
  canonicalEntryBody,
  canonicalize,
  computeEntryHash,
  hexDigestEquals,
  sha256Hex,
  type JsonObject,
  type JsonValue,
} from '../kernel/index.js';
import { disallowedPayloadFields, isEntryType, type EntryType } from './entry-types.js';

// The genesis hash, entry hash and Merkle leaf are the kernel's, shared with the offline verifier.
export { GENESIS_PREV_HASH, computeEntryHash, entryLeafHash } from '../kernel/index.js';

/** Who caused an entry: an identity and its role. */
export interface Actor {
  readonly id: string;
  readonly role: string;
}

/** What a caller appends; the writer adds `index`, `prev_hash`, `at` and `entry_hash`. */
export interface EntryInput {
  readonly type: EntryType;
  readonly trace_id: string;
  readonly request_id: string;
  readonly tenant: string;
  readonly actor: Actor;
  readonly payload: JsonObject;
}

/** One committed ledger entry (SPEC §4). */
export interface LedgerEntry extends EntryInput {
  readonly index: number;
  readonly prev_hash: string;
  /** ISO-8601 UTC with milliseconds, from the injected clock. */
  readonly at: string;
  /** Lower-hex SHA-256 of the RFC 8785 encoding of every other field. */
  readonly entry_hash: string;
}

/** A reference to a committed entry, as carried by an envelope's `ledger` claim (L7 Boundary B). */
export interface EntryRef {
  readonly index: number;
  readonly entry_hash: string;
}

const MAX_ID = 256;
const HEX64 = /^[0-9a-f]{64}$/;

type WellFormed = { isWellFormed(): boolean };

/** Canonical payload text of each checked input, computed once at append time. */
const canonicalPayloads = new WeakMap<object, string>();
/** Full canonical JSON (with entry_hash) of each sealed entry, as stored. */
const canonicalEntries = new WeakMap<object, string>();

function idString(name: string, value: unknown): string {
  if (typeof value !== 'string' || value.length > MAX_ID || !(value as unknown as WellFormed).isWellFormed())
    throw new TypeError(`${name} must be a well-formed string of at most ${MAX_ID} characters`);
  return value;
}

/**
 * Checks a caller's input and returns a frozen copy with a canonicalizable payload.
 * Throws `TypeError` for the caller's own mistakes (unknown type, malformed ids) and
 * {@link FailclosedError} `ERR_LEDGER_PAYLOAD_FIELD` for a payload that is not a JSON object of
 * allowlisted fields with strict-JSON values (L7 Secret Handling, OE-INV-009).
 */
export function parseEntryInput(input: EntryInput): EntryInput {
  if (typeof input !== 'object' || input === null) throw new TypeError('entry input must be an object');
  if (!isEntryType(input.type)) throw new TypeError('unknown entry type');
  const actor = input.actor as unknown;
  if (typeof actor !== 'object' || actor === null) throw new TypeError('actor must be { id, role }');
  const a = actor as Record<string, unknown>;
  const payload = input.payload as unknown;
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload))
    throw new FailclosedError('ERR_LEDGER_PAYLOAD_FIELD', 'payload must be a JSON object');
  const bad = disallowedPayloadFields(input.type, payload);
  if (bad.length > 0)
    throw new FailclosedError(
      'ERR_LEDGER_PAYLOAD_FIELD',
      `payload field not allowed for ${input.type}: ${bad.join(', ')}`,
    );
  let canonicalPayload: string;
  try {
    // Values must be strict JSON (no unsafe numbers, no undefined, no lone surrogates).
    canonicalPayload = canonicalize(payload as JsonValue);
  } catch (err) {
    throw new FailclosedError('ERR_LEDGER_PAYLOAD_FIELD', 'payload value is not strict JSON', { cause: err });
  }
  const checked: EntryInput = Object.freeze({
    type: input.type,
    trace_id: idString('trace_id', input.trace_id),
    request_id: idString('request_id', input.request_id),
    tenant: idString('tenant', input.tenant),
    actor: Object.freeze({ id: idString('actor.id', a['id']), role: idString('actor.role', a['role']) }),
    payload: payload as JsonObject,
  });
  canonicalPayloads.set(checked, canonicalPayload);
  return checked;
}

/** Inserts `entry_hash` (which sorts between `at` and `index`) into a canonical body. */
function withEntryHash(body: string, entryHash: string): string {
  const at = body.indexOf(',"index":');
  return `${body.slice(0, at)},"entry_hash":"${entryHash}"${body.slice(at)}`;
}

/** Seals a checked input (from {@link parseEntryInput}) into a frozen entry at `index` after `prevHash`. */
export function sealEntry(input: EntryInput, index: number, prevHash: string, atMs: number): LedgerEntry {
  const body = { ...input, index, prev_hash: prevHash, at: new Date(atMs).toISOString() };
  const text = canonicalEntryBody(body, canonicalPayloads.get(input));
  const entryHash = sha256Hex(text);
  const entry: LedgerEntry = Object.freeze({ ...body, entry_hash: entryHash });
  canonicalEntries.set(entry, withEntryHash(text, entryHash));
  return entry;
}

/** The canonical JSON text of a whole entry (with `entry_hash`): what is stored and exported. */
export function entryJson(e: LedgerEntry): string {
  return canonicalEntries.get(e) ?? withEntryHash(canonicalEntryBody(e), e.entry_hash);
}

/**
 * Parses a stored row's JSON into a frozen entry and checks its hash. Database rows are a trust
 * boundary: a malformed or altered row throws {@link FailclosedError} `ERR_LEDGER_UNAVAILABLE`
 * (fail closed, L7 ledger protection).
 */
export function parseStoredEntry(value: JsonValue, expectedIndex: number): LedgerEntry {
  const fail = (what: string): never => {
    throw new FailclosedError('ERR_LEDGER_UNAVAILABLE', `stored entry ${expectedIndex} is ${what}`);
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fail('not an object');
  const o = value as Record<string, JsonValue>;
  const actor = o['actor'];
  const payload = o['payload'];
  if (
    o['index'] !== expectedIndex ||
    typeof o['prev_hash'] !== 'string' ||
    !HEX64.test(o['prev_hash']) ||
    !isEntryType(o['type']) ||
    typeof o['at'] !== 'string' ||
    typeof o['trace_id'] !== 'string' ||
    typeof o['request_id'] !== 'string' ||
    typeof o['tenant'] !== 'string' ||
    typeof actor !== 'object' ||
    actor === null ||
    Array.isArray(actor) ||
    typeof (actor as Record<string, JsonValue>)['id'] !== 'string' ||
    typeof (actor as Record<string, JsonValue>)['role'] !== 'string' ||
    typeof payload !== 'object' ||
    payload === null ||
    Array.isArray(payload) ||
    typeof o['entry_hash'] !== 'string' ||
    Object.keys(o).length !== 10
  )
    return fail('malformed');
  const act = actor as Record<string, string>;
  const entry: LedgerEntry = Object.freeze({
    index: expectedIndex,
    prev_hash: o['prev_hash'],
    type: o['type'],
    at: o['at'],
    trace_id: o['trace_id'],
    request_id: o['request_id'],
    tenant: o['tenant'],
    actor: Object.freeze({ id: act['id'] ?? '', role: act['role'] ?? '' }),
    payload: payload as JsonObject,
    entry_hash: o['entry_hash'],
  });
  if (!hexDigestEquals(computeEntryHash(entry), entry.entry_hash))
    return fail('altered (entry_hash mismatch)');
  return entry;
}
