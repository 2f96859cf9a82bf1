/**
 * C2SP signed notes (signed-note v1.0.0) and transparency-log checkpoints (tlog-checkpoint
 * v1.0.0): parse, format and verify, public-key side only. Signing is in `./signing/` (SPEC §1).
 * The ledger's signed checkpoints use these formats (SPEC §4); the offline verifier checks them
 * (SPEC §5, L7 ledger protection).
 *
 * https://c2sp.org/signed-note@v1.0.0, https://c2sp.org/tlog-checkpoint@v1.0.0
 */
import type { KeyObject } from 'node:crypto';
import { deny, FailclosedError, type Deny } from './errors.js';
import { sha256 } from './hash.js';
import { publicKeyFromKeyObject, publicKeyFromRaw, verifyEd25519 } from './keys.js';

/** Signature type byte for Ed25519 note signatures (signed-note §Signature types). */
export const NOTE_ALG_ED25519 = 0x01;
/** Largest note accepted, in UTF-8 bytes. */
export const NOTE_MAX_BYTES = 256 * 1024;
/** Most signature lines accepted in one note (the spec requires at least 16). */
export const NOTE_MAX_SIGNATURES = 100;

const SIG_PREFIX = '\u2014 ';
const ROOT_HASH_BYTES = 32;
const MAX_VKEY_LENGTH = 4096;
const B64_STD = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
// Unicode spaces (Go's unicode.IsSpace adds U+0085) and plus; control characters are checked apart.
const NAME_FORBIDDEN = /[\s\u0085+]/u;
const SIZE_DECIMAL = /^(?:0|[1-9][0-9]{0,15})$/;
const KEY_ID_HEX = /^[0-9a-f]{8}$/;

/** One signature line of a note: key name, 32-bit key ID, and the signature bytes after the ID. */
export interface NoteSignature {
  readonly name: string;
  readonly keyId: number;
  readonly signature: Buffer;
}

/** A parsed, unverified signed note. Its text MUST be ignored until {@link verifyNote} passes. */
export interface Note {
  /** The signed text, including its final newline. */
  readonly text: string;
  readonly signatures: readonly NoteSignature[];
}

/**
 * A trusted key able to check note signatures. The (name, keyId) pair selects it; `verify`
 * gets the UTF-8 note text and the signature bytes after the key ID, and must not throw.
 * Implement this interface to add a signature algorithm; Ed25519 is built in.
 */
export interface NoteVerifier {
  readonly name: string;
  readonly keyId: number;
  readonly algorithm: number;
  verify(text: Uint8Array, signature: Uint8Array): boolean;
}

/** A note whose signatures from known keys all verified, at least one of them. */
export interface VerifiedNote {
  readonly outcome: 'verified';
  readonly text: string;
  /** Names of the known keys whose signatures verified, in note order, without repeats. */
  readonly verifiedBy: readonly string[];
}

/** The body of a tlog-checkpoint. */
export interface Checkpoint {
  readonly origin: string;
  readonly size: number;
  readonly rootHash: Buffer;
  readonly extensions: readonly string[];
}

/** A checkpoint whose note verified (see {@link verifyCheckpoint}). */
export interface VerifiedCheckpoint {
  readonly outcome: 'verified';
  readonly checkpoint: Checkpoint;
  readonly verifiedBy: readonly string[];
}

function malformed(reason: string): FailclosedError {
  return new FailclosedError('ERR_CHECKPOINT_MALFORMED', reason);
}

/** True when `text` holds a character below U+0020, other than newline when allowed (signed-note §Format). */
function hasControl(text: string, allowNewline: boolean): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 && !(allowNewline && c === 0x0a)) return true;
  }
  return false;
}

/** Strict standard base64 (RFC 4648 §4, padded); undefined for any other spelling. */
function decodeBase64Std(text: string): Buffer | undefined {
  if (!B64_STD.test(text)) return undefined;
  const out = Buffer.from(text, 'base64');
  return out.toString('base64') === text ? out : undefined;
}

/** True for a valid signed-note key name: non-empty, no Unicode space, no `+`, no control character. */
export function isValidKeyName(name: unknown): name is string {
  return (
    typeof name === 'string' &&
    name.length > 0 &&
    !NAME_FORBIDDEN.test(name) &&
    !hasControl(name, false) &&
    !LONE_SURROGATE.test(name)
  );
}

/**
 * True for valid note text: ends in a newline, well-formed Unicode, no control character other
 * than newline (signed-note §Format), and at most {@link NOTE_MAX_BYTES}.
 */
export function isValidNoteText(text: unknown): text is string {
  return (
    typeof text === 'string' &&
    text.length <= NOTE_MAX_BYTES &&
    text.endsWith('\n') &&
    !hasControl(text, true) &&
    !LONE_SURROGATE.test(text) &&
    Buffer.byteLength(text, 'utf8') <= NOTE_MAX_BYTES
  );
}

/**
 * Key ID: the first 4 bytes, big-endian, of SHA-256(name || 0x0A || type || key material)
 * (signed-note §Signatures).
 */
export function noteKeyId(name: string, algorithm: number, keyMaterial: Uint8Array): number {
  const digest = sha256(
    Buffer.concat([Buffer.from(`${name}\n`, 'utf8'), Buffer.from([algorithm]), keyMaterial]),
  );
  return digest.readUInt32BE(0);
}

/** Formats one signature line: `— name base64(keyId || signature)\n`. Used by the signer. */
export function formatNoteSignature(name: string, keyId: number, signature: Uint8Array): string {
  const id = Buffer.alloc(4);
  id.writeUInt32BE(keyId);
  return `${SIG_PREFIX}${name} ${Buffer.concat([id, signature]).toString('base64')}\n`;
}

function decodeNoteInput(input: unknown): string {
  if (typeof input === 'string') return input;
  if (!(input instanceof Uint8Array)) throw malformed('a note is text');
  if (input.length > NOTE_MAX_BYTES) throw malformed('the note is too large');
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(input);
  } catch {
    throw malformed('the note is not UTF-8');
  }
}

function parseSignatureLine(line: string): NoteSignature {
  if (!line.startsWith(SIG_PREFIX)) throw malformed('a signature line does not start with an em dash');
  const rest = line.slice(SIG_PREFIX.length);
  const space = rest.indexOf(' ');
  const name = rest.slice(0, space);
  const bytes = space < 0 ? undefined : decodeBase64Std(rest.slice(space + 1));
  if (!isValidKeyName(name) || bytes === undefined || bytes.length < 5) {
    throw malformed('a signature line is malformed');
  }
  return Object.freeze({ name, keyId: bytes.readUInt32BE(0), signature: bytes.subarray(4) });
}

/**
 * Parses a signed note (text or UTF-8 bytes) without verifying it: the text is everything up to
 * and including the newline before the last blank line; then one or more signature lines.
 * Throws `FailclosedError('ERR_CHECKPOINT_MALFORMED')` for anything else (signed-note §Format).
 */
export function parseNote(input: string | Uint8Array): Note {
  // Attacker-controlled: a note from a bundle, a peer or a file.
  const note = decodeNoteInput(input);
  if (!isValidNoteText(note)) throw malformed('the note is not valid note text');
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw malformed('the note has no signature block');
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (block.length === 0) throw malformed('the note has no signatures');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > NOTE_MAX_SIGNATURES) throw malformed('the note has too many signatures');
  return Object.freeze({ text, signatures: Object.freeze(lines.map(parseSignatureLine)) });
}

function ed25519Verifier(name: string, keyId: number, keyMaterial: Uint8Array): NoteVerifier {
  // Refuses wrong lengths, non-canonical and small-order points (SPEC §8).
  const key = publicKeyFromRaw(keyMaterial);
  if (noteKeyId(name, NOTE_ALG_ED25519, key.raw) !== keyId) {
    throw new FailclosedError('ERR_KEY_INVALID', 'the vkey key ID does not match its key');
  }
  const { keyObject } = key;
  return Object.freeze({
    name,
    keyId,
    algorithm: NOTE_ALG_ED25519,
    verify: (text: Uint8Array, signature: Uint8Array): boolean => verifyEd25519(keyObject, text, signature),
  });
}

type VerifierFactory = (name: string, keyId: number, keyMaterial: Uint8Array) => NoteVerifier;

/** Signature type byte → verifier factory. Add an algorithm here; unknown types are refused. */
const VERIFIER_FACTORIES: ReadonlyMap<number, VerifierFactory> = new Map([
  [NOTE_ALG_ED25519, ed25519Verifier],
]);

/**
 * Parses a verifier key `name+hex(keyID)+base64(type || key)`, splitting on the first two `+`
 * only (the base64 may contain `+`). Throws `FailclosedError('ERR_KEY_INVALID')` for a malformed
 * vkey, an unsupported signature type, a key ID that does not match the key, or a small-order or
 * non-canonical Ed25519 key (signed-note §Verifier keys; SPEC §8).
 */
export function noteVerifierFromVkey(vkey: string): NoteVerifier {
  // Attacker-controlled when read from a bundle: bounded, then strictly split and decoded.
  if (typeof vkey !== 'string' || vkey.length > MAX_VKEY_LENGTH) {
    throw new FailclosedError('ERR_KEY_INVALID', 'the vkey is not a bounded string');
  }
  const first = vkey.indexOf('+');
  const second = first < 0 ? -1 : vkey.indexOf('+', first + 1);
  const name = vkey.slice(0, Math.max(first, 0));
  const idHex = vkey.slice(first + 1, second);
  const material = second < 0 ? undefined : decodeBase64Std(vkey.slice(second + 1));
  if (
    second < 0 ||
    !isValidKeyName(name) ||
    !KEY_ID_HEX.test(idHex) ||
    material === undefined ||
    material.length < 2
  ) {
    throw new FailclosedError('ERR_KEY_INVALID', 'the vkey is malformed');
  }
  const factory = VERIFIER_FACTORIES.get(material[0] as number);
  if (factory === undefined) throw new FailclosedError('ERR_KEY_INVALID', 'unsupported note signature type');
  return factory(name, Number.parseInt(idHex, 16), material.subarray(1));
}

/** A verifier for an Ed25519 public `KeyObject` under `name`; throws like {@link noteVerifierFromVkey}. */
export function noteVerifierFor(name: string, publicKey: KeyObject): NoteVerifier {
  if (!isValidKeyName(name)) throw new TypeError('invalid note key name');
  const { raw } = publicKeyFromKeyObject(publicKey);
  return ed25519Verifier(name, noteKeyId(name, NOTE_ALG_ED25519, raw), raw);
}

/**
 * The vkey string for an Ed25519 public key: `name+hex(keyID)+base64(0x01 || key)`. Throws
 * `TypeError` for an invalid name and `FailclosedError('ERR_KEY_INVALID')` for a bad key.
 */
export function vkeyFor(name: string, publicKey: KeyObject): string {
  if (!isValidKeyName(name)) throw new TypeError('invalid note key name');
  const { raw } = publicKeyFromKeyObject(publicKey);
  const id = noteKeyId(name, NOTE_ALG_ED25519, raw).toString(16).padStart(8, '0');
  return `${name}+${id}+${Buffer.concat([Buffer.from([NOTE_ALG_ED25519]), raw]).toString('base64')}`;
}

/**
 * Verifies a signed note against trusted verifiers. Signatures whose (name, key ID) match no
 * verifier are ignored; every signature from a known key must verify, and at least one must.
 * Never throws on hostile input. Denies with `ERR_CHECKPOINT_MALFORMED` or
 * `ERR_CHECKPOINT_SIGNATURE` (signed-note §Signatures; SPEC §5 checkpoint signature check).
 */
export function verifyNote(
  input: string | Uint8Array,
  verifiers: readonly NoteVerifier[],
): VerifiedNote | Deny {
  let note: Note;
  try {
    note = parseNote(input);
  } catch (err) {
    return deny('ERR_CHECKPOINT_MALFORMED', err instanceof FailclosedError ? err.message : 'malformed note');
  }
  const text = Buffer.from(note.text, 'utf8');
  const verifiedBy: string[] = [];
  for (const sig of note.signatures) {
    const verifier = verifiers.find((v) => v.name === sig.name && v.keyId === sig.keyId);
    if (verifier === undefined) continue;
    let ok = false;
    try {
      ok = verifier.verify(text, sig.signature) === true;
    } catch {
      ok = false;
    }
    if (!ok)
      return deny('ERR_CHECKPOINT_SIGNATURE', `a signature by known key ${verifier.name} does not verify`);
    if (!verifiedBy.includes(verifier.name)) verifiedBy.push(verifier.name);
  }
  if (verifiedBy.length === 0) return deny('ERR_CHECKPOINT_SIGNATURE', 'no signature from a known key');
  return Object.freeze({ outcome: 'verified', text: note.text, verifiedBy: Object.freeze(verifiedBy) });
}

/**
 * Formats a checkpoint body: origin, decimal size, base64 root hash, extension lines, each ending
 * in a newline (tlog-checkpoint §Note text). Throws `TypeError` for invalid fields.
 */
export function formatCheckpoint(checkpoint: {
  readonly origin: string;
  readonly size: number;
  readonly rootHash: Uint8Array;
  readonly extensions?: readonly string[];
}): string {
  const { origin, size, rootHash, extensions = [] } = checkpoint;
  const isLine = (s: unknown): boolean =>
    typeof s === 'string' && s.length > 0 && isValidNoteText(`${s}\n`) && !s.includes('\n');
  if (!isLine(origin)) throw new TypeError('checkpoint origin must be a non-empty line');
  if (!Number.isSafeInteger(size) || size < 0)
    throw new TypeError('checkpoint size must be a safe non-negative integer');
  if (!(rootHash instanceof Uint8Array) || rootHash.length !== ROOT_HASH_BYTES)
    throw new TypeError('root hash must be 32 bytes');
  if (!extensions.every(isLine)) throw new TypeError('checkpoint extension lines must be non-empty lines');
  const lines = [origin, String(size), Buffer.from(rootHash).toString('base64'), ...extensions];
  return lines.map((l) => `${l}\n`).join('');
}

/**
 * Parses a checkpoint body strictly: non-empty origin, decimal size without leading zeros (at
 * most 2^53 - 1), standard base64 of a 32-byte root hash, non-empty extension lines. Throws
 * `FailclosedError('ERR_CHECKPOINT_MALFORMED')` (tlog-checkpoint §Note text; SPEC §4).
 */
export function parseCheckpoint(text: string): Checkpoint {
  // Attacker-controlled: only meaningful once the note carrying it verified.
  if (!isValidNoteText(text)) throw malformed('the checkpoint is not valid note text');
  const [origin, sizeLine, rootLine, ...extensions] = text.slice(0, -1).split('\n');
  if (origin === undefined || origin.length === 0) throw malformed('the checkpoint origin is empty');
  if (sizeLine === undefined || !SIZE_DECIMAL.test(sizeLine))
    throw malformed('the checkpoint size is malformed');
  const size = Number(sizeLine);
  if (!Number.isSafeInteger(size)) throw malformed('the checkpoint size is too large');
  const rootHash = rootLine === undefined ? undefined : decodeBase64Std(rootLine);
  if (rootHash === undefined || rootHash.length !== ROOT_HASH_BYTES)
    throw malformed('the checkpoint root hash is malformed');
  if (extensions.some((l) => l.length === 0)) throw malformed('a checkpoint extension line is empty');
  return Object.freeze({ origin, size, rootHash, extensions: Object.freeze(extensions) });
}

/**
 * Verifies a signed checkpoint: {@link verifyNote}, then {@link parseCheckpoint} on its text, then,
 * when `expected.origin` is given, that the origin is exactly that log. Never throws on hostile
 * input; denies with `ERR_CHECKPOINT_MALFORMED` or `ERR_CHECKPOINT_SIGNATURE` (SPEC §4, §5).
 */
export function verifyCheckpoint(
  input: string | Uint8Array,
  verifiers: readonly NoteVerifier[],
  expected: { readonly origin?: string } = {},
): VerifiedCheckpoint | Deny {
  const note = verifyNote(input, verifiers);
  if (note.outcome === 'deny') return note;
  let checkpoint: Checkpoint;
  try {
    checkpoint = parseCheckpoint(note.text);
  } catch (err) {
    return deny(
      'ERR_CHECKPOINT_MALFORMED',
      err instanceof FailclosedError ? err.message : 'malformed checkpoint',
    );
  }
  if (expected.origin !== undefined && checkpoint.origin !== expected.origin) {
    return deny('ERR_CHECKPOINT_SIGNATURE', 'the checkpoint is for another log');
  }
  return Object.freeze({ outcome: 'verified', checkpoint, verifiedBy: note.verifiedBy });
}
