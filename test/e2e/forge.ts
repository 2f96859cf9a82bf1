/**
 * Envelope forgery helpers for the adversarial end-to-end tests (SPEC §7 scenarios 1, 10): take a
 * real compact JWS apart, change header or payload bytes, and sign again with any key.
 */
import { createHmac } from 'node:crypto';
import { signEd25519 } from '../../src/kernel/signing/index.js';
import type { SigningKey } from '../../src/kernel/signing/index.js';

const b64 = (text: string | Buffer): string => Buffer.from(text).toString('base64url');

/** The decoded header and payload texts of a compact JWS. */
export function partsOf(envelope: string): { header: string; payload: string; signature: string } {
  const [h = '', p = '', s = ''] = envelope.split('.');
  return {
    header: Buffer.from(h, 'base64url').toString('utf8'),
    payload: Buffer.from(p, 'base64url').toString('utf8'),
    signature: s,
  };
}

/** A compact JWS over exactly these header and payload texts, signed with Ed25519 by `key`. */
export function signRaw(header: string, payload: string, key: SigningKey): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${signEd25519(key, Buffer.from(input, 'latin1')).toString('base64url')}`;
}

/** A compact JWS "signed" with HMAC-SHA256 under `secret` (algorithm confusion). */
export function signHmac(header: string, payload: string, secret: Uint8Array): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** The same token with one bit of segment `which` (0 header, 1 payload, 2 signature) flipped. */
export function flipBit(envelope: string, which: 0 | 1 | 2, bit = 0): string {
  const segments = envelope.split('.');
  const bytes = Buffer.from(segments[which] ?? '', 'base64url');
  const i = Math.min(bytes.length - 1, 8 + (bit >> 3));
  bytes[i] = (bytes[i] ?? 0) ^ (1 << (bit & 7));
  segments[which] = bytes.toString('base64url');
  return segments.join('.');
}

/** Payload text with `name` set to `value` (other members unchanged, still canonical order). */
export function withClaim(payload: string, name: string, value: unknown): string {
  const claims = JSON.parse(payload) as Record<string, unknown>;
  claims[name] = value;
  const sorted = Object.fromEntries(
    Object.keys(claims)
      .sort()
      .map((k) => [k, claims[k]]),
  );
  return JSON.stringify(sorted);
}
