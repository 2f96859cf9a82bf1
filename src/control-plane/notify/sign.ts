/**
 * Webhook signatures per the Standard Webhooks specification
 * (https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md):
 * `webhook-signature: v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`, the
 * key being the base64 bytes after the `whsec_` prefix of the receiver's secret. No I/O.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const SECRET = /^whsec_([A-Za-z0-9+/]{32,88}={0,2})$/;

/** The HMAC key of a `whsec_…` secret; `TypeError` when malformed or shorter than 24 bytes. */
export function webhookKey(secret: string): Buffer {
  const m = SECRET.exec(secret);
  const key = m?.[1] === undefined ? undefined : Buffer.from(m[1], 'base64');
  if (key === undefined || key.length < 24 || key.length > 64)
    throw new TypeError('a webhook secret is whsec_ followed by 24 to 64 base64 bytes');
  return key;
}

/** A fresh `whsec_` secret of 32 random bytes. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

/** The `webhook-signature` value of one delivery: `v1,<base64 HMAC-SHA256>`. */
export function signWebhook(secret: string, id: string, timestampSec: number, body: string): string {
  const mac = createHmac('sha256', webhookKey(secret))
    .update(`${id}.${timestampSec}.${body}`)
    .digest('base64');
  return `v1,${mac}`;
}

/**
 * True when one of the space-separated `v1,` signatures of `header` is the signature of `id`,
 * `timestampSec` and `body` under `secret` (constant-time compare). What a receiver runs, with
 * its own check that the timestamp is recent.
 */
export function verifyWebhook(
  secret: string,
  header: string,
  id: string,
  timestampSec: number,
  body: string,
): boolean {
  const expected = Buffer.from(signWebhook(secret, id, timestampSec, body).slice(3), 'base64');
  return header.split(' ').some((sig) => {
    if (!sig.startsWith('v1,')) return false;
    const got = Buffer.from(sig.slice(3), 'base64');
    return got.length === expected.length && timingSafeEqual(got, expected);
  });
}
