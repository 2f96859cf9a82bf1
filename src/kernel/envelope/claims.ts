/**
 * The approval envelope's header and claims (SPEC §3): types, limits and the strict claim
 * validator shared by the issuer and the verifier.
 */
import { canonicalize } from '../canonical.js';
import { FailclosedError } from '../errors.js';
import { sha256Hex } from '../hash.js';
import type { JsonValue } from '../json.js';

/** The JWS `typ` of an approval envelope (SPEC §3: a dedicated `typ`). */
export const ENVELOPE_TYP = 'fc-envelope+jwt';
/** The only JWS `alg` an envelope may carry (SPEC §3). */
export const ENVELOPE_ALG = 'EdDSA';
/** Longest compact envelope accepted, checked before any decoding (characters). */
export const ENVELOPE_MAX_LENGTH = 65_536;
/** Longest string claim or list item (UTF-16 code units). */
export const CLAIM_MAX_STRING = 512;
/** Most items in any list claim (`approvals`, `egress`, `fs_read`, `fs_write`). */
export const CLAIM_MAX_ITEMS = 64;

/** The protected header, exactly these three members, canonically encoded. */
export interface EnvelopeHeader {
  readonly alg: typeof ENVELOPE_ALG;
  readonly kid: string;
  readonly typ: typeof ENVELOPE_TYP;
}

/** Capabilities and limits granted to one execution (SPEC §3, OE-INV-006/007/024). */
export interface EnvelopeConstraints {
  readonly timeout_ms: number;
  readonly max_output_bytes: number;
  readonly memory_bytes: number;
  readonly network: boolean;
  readonly egress: readonly string[];
  readonly fs_read: readonly string[];
  readonly fs_write: readonly string[];
  readonly max_cost_cents: number | null;
}

/** The confirmed ledger record of the decision (L7 Boundary B). */
export interface EnvelopeLedgerRef {
  readonly index: number;
  readonly entry_hash: string;
}

/** Envelope claims: all required, no others (SPEC §3). Times are whole seconds. */
export interface EnvelopeClaims {
  readonly iss: string;
  readonly aud: string;
  readonly sub: string;
  readonly tenant: string;
  readonly tool: string;
  /** Lower-case hex SHA-256 of `canonicalize(params)`, see {@link computeParamsSha256}. */
  readonly params_sha256: string;
  /** The single-use nonce. */
  readonly jti: string;
  readonly iat: number;
  readonly exp: number;
  readonly decision_id: string;
  readonly request_id: string;
  readonly trace_id: string;
  /** Lower-case hex SHA-256 of the policy bundle. */
  readonly policy_bundle: string;
  readonly ledger: EnvelopeLedgerRef;
  readonly approvals: readonly string[];
  readonly constraints: EnvelopeConstraints;
}

const STRING_CLAIMS = ['iss', 'aud', 'sub', 'tenant', 'tool', 'jti', 'decision_id', 'request_id', 'trace_id'];
const HEX_CLAIMS = ['params_sha256', 'policy_bundle'];
const CLAIM_COUNT = STRING_CLAIMS.length + HEX_CLAIMS.length + 5; // iat, exp, ledger, approvals, constraints
const COUNT_CONSTRAINTS = ['timeout_ms', 'max_output_bytes', 'memory_bytes'];
const LIST_CONSTRAINTS = ['egress', 'fs_read', 'fs_write'];
const CONSTRAINT_COUNT = COUNT_CONSTRAINTS.length + LIST_CONSTRAINTS.length + 2; // network, max_cost_cents
const CLAIM_NAMES = [...STRING_CLAIMS, ...HEX_CLAIMS, 'iat', 'exp', 'ledger', 'approvals', 'constraints'];
const CONSTRAINT_NAMES = [...COUNT_CONSTRAINTS, ...LIST_CONSTRAINTS, 'network', 'max_cost_cents'];
const LEDGER_NAMES = ['index', 'entry_hash'];
const HEX64 = /^[0-9a-f]{64}$/;

type Obj = Record<string, unknown>;
const hasOwn = (o: Obj, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

function isPlainObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function hasExactly(o: Obj, count: number, names: readonly string[]): boolean {
  if (Object.keys(o).length !== count) return false;
  for (const n of names) if (!hasOwn(o, n)) return false;
  return true;
}

function isBoundedString(v: unknown): v is string {
  // Lone surrogates have no UTF-8 encoding, so canonical JSON refuses them.
  return (
    typeof v === 'string' &&
    v.length > 0 &&
    v.length <= CLAIM_MAX_STRING &&
    (v as unknown as { isWellFormed(): boolean }).isWellFormed()
  );
}

function isCount(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

function isHex64(v: unknown): v is string {
  return typeof v === 'string' && HEX64.test(v);
}

function isStringList(v: unknown): v is readonly string[] {
  if (!Array.isArray(v) || v.length > CLAIM_MAX_ITEMS) return false;
  for (const item of v) if (!isBoundedString(item)) return false;
  return true;
}

function isConstraints(v: unknown): v is EnvelopeConstraints {
  if (!isPlainObject(v)) return false;
  if (!hasExactly(v, CONSTRAINT_COUNT, CONSTRAINT_NAMES)) return false;
  for (const n of COUNT_CONSTRAINTS) if (!isCount(v[n])) return false;
  for (const n of LIST_CONSTRAINTS) if (!isStringList(v[n])) return false;
  return typeof v.network === 'boolean' && (v.max_cost_cents === null || isCount(v.max_cost_cents));
}

function isLedgerRef(v: unknown): v is EnvelopeLedgerRef {
  return isPlainObject(v) && hasExactly(v, 2, LEDGER_NAMES) && isCount(v.index) && isHex64(v.entry_hash);
}

/**
 * True when `value` has exactly the {@link EnvelopeClaims} members, each of its type: non-empty
 * strings of at most {@link CLAIM_MAX_STRING} units, safe non-negative integers, lower-case hex
 * SHA-256 digests, lists of at most {@link CLAIM_MAX_ITEMS}; unknown members at any level fail.
 * (SPEC §3 "all required claims present and typed", denial `ERR_ENVELOPE_CLAIMS`.)
 */
export function isEnvelopeClaims(value: unknown): value is EnvelopeClaims {
  if (!isPlainObject(value)) return false;
  if (!hasExactly(value, CLAIM_COUNT, CLAIM_NAMES)) return false;
  for (const n of STRING_CLAIMS) if (!isBoundedString(value[n])) return false;
  for (const n of HEX_CLAIMS) if (!isHex64(value[n])) return false;
  return (
    isCount(value.iat) &&
    isCount(value.exp) &&
    isLedgerRef(value.ledger) &&
    isStringList(value.approvals) &&
    isConstraints(value.constraints)
  );
}

/** Freezes a validated claims value and every nested object and list in place. */
export function freezeClaims(claims: EnvelopeClaims): EnvelopeClaims {
  Object.freeze(claims.ledger);
  Object.freeze(claims.approvals);
  Object.freeze(claims.constraints.egress);
  Object.freeze(claims.constraints.fs_read);
  Object.freeze(claims.constraints.fs_write);
  Object.freeze(claims.constraints);
  return Object.freeze(claims);
}

/**
 * Parses untrusted claims into a frozen copy. Throws `FailclosedError('ERR_ENVELOPE_CLAIMS')`
 * when {@link isEnvelopeClaims} fails (SPEC §3).
 */
export function parseEnvelopeClaims(input: unknown): EnvelopeClaims {
  if (!isEnvelopeClaims(input)) {
    throw new FailclosedError('ERR_ENVELOPE_CLAIMS', 'claims are missing, unexpected or mistyped');
  }
  const c = input.constraints;
  return freezeClaims({
    ...input,
    ledger: { ...input.ledger },
    approvals: [...input.approvals],
    constraints: { ...c, egress: [...c.egress], fs_read: [...c.fs_read], fs_write: [...c.fs_write] },
  });
}

const str = JSON.stringify;

function encodeList(items: readonly string[]): string {
  if (items.length === 0) return '[]';
  let out = '[' + str(items[0]);
  for (let i = 1; i < items.length; i++) out += ',' + str(items[i]);
  return out + ']';
}

/**
 * RFC 8785 canonical JSON of claims that passed {@link isEnvelopeClaims}, written out in the
 * fixed member order (UTF-16 code unit order) instead of sorting per call. Equal to
 * `canonicalize(claims)` for every valid claims value (tested as a property); the issuer and
 * the verifier's fast path use it. For well-formed strings `JSON.stringify` escapes exactly as
 * RFC 8785 §3.2.2.2 does, and safe integers print as RFC 8785 §3.2.2.3 prints them.
 */
export function encodeEnvelopeClaims(c: EnvelopeClaims): string {
  const k = c.constraints;
  return (
    `{"approvals":${encodeList(c.approvals)},"aud":${str(c.aud)},` +
    `"constraints":{"egress":${encodeList(k.egress)},"fs_read":${encodeList(k.fs_read)},` +
    `"fs_write":${encodeList(k.fs_write)},"max_cost_cents":${k.max_cost_cents === null ? 'null' : String(k.max_cost_cents)},` +
    `"max_output_bytes":${k.max_output_bytes},"memory_bytes":${k.memory_bytes},"network":${k.network},` +
    `"timeout_ms":${k.timeout_ms}},"decision_id":${str(c.decision_id)},"exp":${c.exp},"iat":${c.iat},` +
    `"iss":${str(c.iss)},"jti":${str(c.jti)},` +
    `"ledger":{"entry_hash":"${c.ledger.entry_hash}","index":${c.ledger.index}},` +
    `"params_sha256":"${c.params_sha256}","policy_bundle":"${c.policy_bundle}",` +
    `"request_id":${str(c.request_id)},"sub":${str(c.sub)},"tenant":${str(c.tenant)},` +
    `"tool":${str(c.tool)},"trace_id":${str(c.trace_id)}}`
  );
}

/**
 * The `params_sha256` binding: lower-case hex SHA-256 of the RFC 8785 canonical JSON of the
 * parameters (SPEC §3, GEI). Throws what `canonicalize` throws for values that cannot be encoded.
 */
export function computeParamsSha256(params: JsonValue): string {
  return sha256Hex(canonicalize(params));
}

/** The canonical header text for `kid`: `{"alg":"EdDSA","kid":…,"typ":"fc-envelope+jwt"}`. */
export function envelopeHeaderText(kid: string): string {
  return `{"alg":"${ENVELOPE_ALG}","kid":${JSON.stringify(kid)},"typ":"${ENVELOPE_TYP}"}`;
}
