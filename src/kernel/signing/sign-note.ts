/**
 * Signing C2SP signed notes (signed-note v1.0.0) with Ed25519, for the ledger's checkpoints
 * (SPEC §4 signed checkpoints). Verification lives in `../note.ts`, which never signs.
 *
 * https://c2sp.org/signed-note@v1.0.0
 */
import { createPublicKey, sign as cryptoSign, type KeyObject } from 'node:crypto';
import {
  FailclosedError,
  formatNoteSignature,
  isValidKeyName,
  isValidNoteText,
  NOTE_ALG_ED25519,
  noteKeyId,
  publicKeyFromKeyObject,
} from '../index.js';
import { signingKeyFromSeed } from './signing-key.js';

/** An Ed25519 note signing key: key name, 32-bit key ID and the private key. */
export interface NoteSigner {
  readonly name: string;
  readonly keyId: number;
  readonly privateKey: KeyObject;
}

const SKEY_PREFIX = 'PRIVATE+KEY+';
const KEY_ID_HEX = /^[0-9a-f]{8}$/;
const B64_STD = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function ed25519KeyId(name: string, privateKey: KeyObject): number {
  if (privateKey.type !== 'private' || privateKey.asymmetricKeyType !== 'ed25519') {
    throw new TypeError('a note signer needs an Ed25519 private key');
  }
  // Also refuses small-order and non-canonical public keys (SPEC §8).
  const { raw } = publicKeyFromKeyObject(createPublicKey(privateKey));
  return noteKeyId(name, NOTE_ALG_ED25519, raw);
}

/**
 * A {@link NoteSigner} for an Ed25519 private key under `name`, with the key ID computed as
 * SHA-256(name || 0x0A || 0x01 || public key)[:4]. Throws `TypeError` for an invalid name or a
 * non-Ed25519 key. (SPEC §4)
 */
export function noteSignerFor(name: string, privateKey: KeyObject): NoteSigner {
  if (!isValidKeyName(name)) throw new TypeError('invalid note key name');
  return Object.freeze({ name, keyId: ed25519KeyId(name, privateKey), privateKey });
}

/**
 * Parses a signer key `PRIVATE+KEY+name+hex(keyID)+base64(0x01 || 32-byte seed)` (the format of
 * Go's `golang.org/x/mod/sumdb/note`). Throws `FailclosedError('ERR_KEY_INVALID')` when it is
 * malformed, not Ed25519, or its key ID does not match the key. Handle the input as a secret.
 */
export function noteSignerFromSkey(skey: string): NoteSigner {
  const invalid = (): FailclosedError =>
    new FailclosedError('ERR_KEY_INVALID', 'the note signer key is malformed');
  if (typeof skey !== 'string' || !skey.startsWith(SKEY_PREFIX)) throw invalid();
  const rest = skey.slice(SKEY_PREFIX.length);
  const first = rest.indexOf('+');
  const second = first < 0 ? -1 : rest.indexOf('+', first + 1);
  if (second < 0) throw invalid();
  const name = rest.slice(0, first);
  const idHex = rest.slice(first + 1, second);
  const b64 = rest.slice(second + 1);
  const material = B64_STD.test(b64) ? Buffer.from(b64, 'base64') : undefined;
  if (!isValidKeyName(name) || !KEY_ID_HEX.test(idHex) || material?.toString('base64') !== b64)
    throw invalid();
  if (material.length !== 33 || material[0] !== NOTE_ALG_ED25519) throw invalid();
  const signer = noteSignerFor(name, signingKeyFromSeed(material.subarray(1)).privateKey);
  if (signer.keyId !== Number.parseInt(idHex, 16)) throw invalid();
  return signer;
}

/**
 * Signs note `text` (ending in a newline, no control characters but newline) with one or more
 * Ed25519 signers and returns the signed note: text, a blank line, one signature line per signer
 * (signed-note §Format). Deterministic (RFC 8032). Throws `TypeError` for invalid text, names,
 * keys or a key ID that does not match its key. (SPEC §4 signed checkpoints)
 */
export function signNote(text: string, signers: NoteSigner | readonly NoteSigner[]): string {
  if (!isValidNoteText(text))
    throw new TypeError('note text must end in a newline and hold no control characters');
  const list: readonly NoteSigner[] = Array.isArray(signers) ? signers : [signers as NoteSigner];
  if (list.length === 0) throw new TypeError('a note needs at least one signer');
  const data = Buffer.from(text, 'utf8');
  let out = `${text}\n`;
  for (const signer of list) {
    if (!isValidKeyName(signer.name)) throw new TypeError('invalid note key name');
    if (ed25519KeyId(signer.name, signer.privateKey) !== signer.keyId) {
      throw new TypeError('the signer key ID does not match its key');
    }
    out += formatNoteSignature(signer.name, signer.keyId, cryptoSign(null, data, signer.privateKey));
  }
  return out;
}
