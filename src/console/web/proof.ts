/**
 * Checks, in the browser, what the evidence page shows (FC-INV-5, SPEC §4; docs/console.md
 * "Evidence"): each record's `entry_hash` recomputed from its fields (RFC 8785), its inclusion
 * in the signed checkpoint (RFC 9162 §2.1.3.2), and the checkpoint's C2SP signed-note signature
 * under the ledger key the gate publishes (`/v1/trust-roots`). WebCrypto only; never throws on
 * hostile input (a failed check is `false`).
 */
import { canonicalJson } from './statement.js';
import type { Json } from './statement.js';

const enc = new TextEncoder();

async function sha256(data: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', data));
}

function concat(...parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Lower-case hex → bytes; undefined unless exactly hex of even length. */
export function fromHex(hex: string): Uint8Array<ArrayBuffer> | undefined {
  if (!/^(?:[0-9a-f]{2})*$/.test(hex)) return undefined;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i += 1) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function toHex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** Standard base64 → bytes (strict round trip); undefined otherwise. */
function fromBase64(text: string): Uint8Array<ArrayBuffer> | undefined {
  try {
    const bin = atob(text);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i += 1) out[i] = bin.charCodeAt(i);
    return btoa(bin) === text ? out : undefined;
  } catch {
    return undefined;
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** A ledger record as the evidence view lists it. */
export type Entry = Readonly<Record<string, Json>>;

/**
 * The entry hash recomputed from the record's fields: SHA-256 of RFC 8785 of every field but
 * `entry_hash` (docs/ledger.md). Numbers are written as ECMAScript writes them (RFC 8785 §3.2.2.3).
 */
export async function entryHashOf(e: Entry): Promise<string | undefined> {
  const body: Record<string, Json> = {};
  for (const k of [
    'actor',
    'at',
    'index',
    'payload',
    'prev_hash',
    'request_id',
    'tenant',
    'trace_id',
    'type',
  ]) {
    const v = e[k];
    if (v === undefined) return undefined;
    body[k] = v;
  }
  try {
    return toHex(await sha256(enc.encode(canonicalJson(body, { numbers: 'finite' }))));
  } catch {
    return undefined;
  }
}

const half = (n: number): number => Math.floor(n / 2);
const odd = (n: number): boolean => n % 2 === 1;

/** RFC 9162 §2.1.3.2: the root an inclusion proof leads to, or undefined. */
export async function rootFromProof(
  index: number,
  size: number,
  leaf: Uint8Array<ArrayBuffer>,
  proof: readonly Uint8Array<ArrayBuffer>[],
): Promise<Uint8Array<ArrayBuffer> | undefined> {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size)
    return undefined;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0 || p.length !== 32) return undefined;
    if (odd(fn) || fn === sn) {
      r = await sha256(concat(Uint8Array.of(1), p, r));
      while (!odd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else r = await sha256(concat(Uint8Array.of(1), r, p));
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 ? r : undefined;
}

/** True when the record with `entryHash` at `index` is in the tree of `size` leaves with `root`. */
export async function checkInclusion(
  entryHash: string,
  index: number,
  size: number,
  proofHex: readonly string[],
  root: Uint8Array,
): Promise<boolean> {
  const hash = fromHex(entryHash);
  const proof = proofHex.map(fromHex);
  if (hash === undefined || hash.length !== 32 || proof.some((p) => p === undefined)) return false;
  const leaf = await sha256(concat(Uint8Array.of(0), hash));
  const computed = await rootFromProof(index, size, leaf, proof as Uint8Array<ArrayBuffer>[]);
  return computed !== undefined && equal(computed, root);
}

/** A checkpoint whose signature verified. */
export interface VerifiedCheckpoint {
  readonly origin: string;
  readonly size: number;
  readonly root: Uint8Array;
}

/**
 * Verifies a C2SP signed checkpoint note under `vkey` (`name+hex(keyID)+base64(0x01 || key)`):
 * a signature line of that key must verify over the note text; then its size and root are read.
 */
export async function verifyCheckpointNote(
  note: string,
  vkey: string,
): Promise<VerifiedCheckpoint | undefined> {
  try {
    const first = vkey.indexOf('+');
    const second = first < 0 ? -1 : vkey.indexOf('+', first + 1);
    if (second < 0) return undefined;
    const name = vkey.slice(0, first);
    const idHex = vkey.slice(first + 1, second);
    const b64 = vkey.slice(second + 1);
    const material = fromBase64(b64);
    if (name === '' || material?.length !== 33 || material[0] !== 1) return undefined;
    const key = material.slice(1);
    const id = (await sha256(concat(enc.encode(name), Uint8Array.of(0x0a, 1), key))).slice(0, 4);
    if (toHex(id) !== idHex) return undefined;
    const split = note.lastIndexOf('\n\n');
    if (split < 0) return undefined;
    const text = note.slice(0, split + 1);
    const publicKey = await crypto.subtle.importKey('raw', key, { name: 'Ed25519' }, false, ['verify']);
    let verified = false;
    for (const line of note.slice(split + 2).split('\n')) {
      if (!line.startsWith(`\u2014 ${name} `)) continue;
      const sig = fromBase64(line.slice(`\u2014 ${name} `.length));
      if (sig === undefined || sig.length !== 68 || !equal(sig.slice(0, 4), id)) continue;
      if (!(await crypto.subtle.verify({ name: 'Ed25519' }, publicKey, sig.slice(4), enc.encode(text))))
        return undefined;
      verified = true;
    }
    if (!verified) return undefined;
    const [origin, sizeLine, rootLine] = text.slice(0, -1).split('\n');
    const root = rootLine === undefined ? undefined : fromBase64(rootLine);
    if (origin === undefined || sizeLine === undefined || !/^(?:0|[1-9]\d{0,15})$/.test(sizeLine))
      return undefined;
    if (root?.length !== 32) return undefined;
    return { origin, size: Number(sizeLine), root };
  } catch {
    return undefined;
  }
}
