/**
 * The `webhooks` section of the deployment's configuration (`failclosed.json`), parsed strictly
 * like any untrusted input: unknown members, wrong types, a receiver URL that is not http(s) or
 * carries credentials, and a malformed secret are refused (`TypeError`). See
 * docs/notifications.md.
 */
import { webhookKey } from './sign.js';

/** What a notice is about. */
export type NoticeEvent = 'approval.requested' | 'break_glass.used';

/** Every notice event. */
export const NOTICE_EVENTS: readonly NoticeEvent[] = ['approval.requested', 'break_glass.used'];

/** The body a receiver gets: Standard Webhooks JSON, or a Slack-compatible message. */
export type ReceiverFormat = 'standard' | 'slack';

/** One configured receiver. */
export interface WebhookReceiver {
  /** Names the receiver in the outbox and the CLI: `[a-z0-9][a-z0-9_-]{0,63}`. */
  readonly id: string;
  /** An operator-configured `http:` or `https:` URL (docs/notifications.md "SSRF"). */
  readonly url: string;
  /** `whsec_…` (Standard Webhooks): the HMAC key of its signatures. A secret. */
  readonly secret: string;
  readonly format: ReceiverFormat;
  readonly events: readonly NoticeEvent[];
}

/** The parsed `webhooks` section. */
export interface WebhookConfig {
  readonly receivers: readonly WebhookReceiver[];
  /** Base of the console link in notices; default: the Gate's own URL. */
  readonly public_url?: string;
  /** Deliveries tried per notice and receiver before it is given up (default 8). */
  readonly max_attempts: number;
  /** How long one delivery may take (ms, default 5000). */
  readonly timeout_ms: number;
}

const ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;

function bad(what: string): TypeError {
  return new TypeError(`webhooks: ${what}`);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function only(o: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) throw bad(`unknown member ${what}.${k}`);
}

/**
 * An operator-configured receiver URL: `http:` or `https:` only, no user or password, at most
 * 2048 characters. Loopback and private addresses are allowed (the operator chose them; see the
 * SSRF notes). `TypeError` otherwise.
 */
export function parseReceiverUrl(v: unknown): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > 2048) throw bad('url must be a string');
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw bad('url is not a URL');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw bad('url must be http: or https:');
  if (u.username !== '' || u.password !== '') throw bad('url must not carry credentials');
  return u.toString();
}

function int(v: unknown, what: string, min: number, max: number, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
    throw bad(`${what} must be an integer ${min}..${max}`);
  return v;
}

/** Parses one receiver. */
export function parseReceiver(v: unknown): WebhookReceiver {
  if (!isObject(v)) throw bad('a receiver must be an object');
  only(v, ['id', 'url', 'secret', 'format', 'events'], 'receivers[]');
  if (typeof v['id'] !== 'string' || !ID.test(v['id'])) throw bad('receiver id is malformed');
  const secret = v['secret'];
  if (typeof secret !== 'string') throw bad('receiver secret must be a whsec_ string');
  webhookKey(secret);
  const format = v['format'] ?? 'standard';
  if (format !== 'standard' && format !== 'slack') throw bad('receiver format must be "standard" or "slack"');
  const events = v['events'] ?? NOTICE_EVENTS;
  if (
    !Array.isArray(events) ||
    events.length === 0 ||
    !events.every((e) => NOTICE_EVENTS.includes(e as NoticeEvent))
  )
    throw bad(`receiver events must be a non-empty list of ${NOTICE_EVENTS.join(', ')}`);
  return Object.freeze({
    id: v['id'],
    url: parseReceiverUrl(v['url']),
    secret,
    format,
    events: Object.freeze([...new Set(events as NoticeEvent[])]),
  });
}

/** Parses the `webhooks` section. `TypeError` naming the offending member. */
export function parseWebhookConfig(v: unknown): WebhookConfig {
  if (!isObject(v)) throw bad('must be an object');
  only(v, ['receivers', 'public_url', 'max_attempts', 'timeout_ms'], 'webhooks');
  const list = v['receivers'] ?? [];
  if (!Array.isArray(list) || list.length > 32) throw bad('receivers must be a list of at most 32');
  const receivers = list.map(parseReceiver);
  if (new Set(receivers.map((r) => r.id)).size !== receivers.length) throw bad('receiver ids must be unique');
  return Object.freeze({
    receivers: Object.freeze(receivers),
    ...(v['public_url'] === undefined ? {} : { public_url: parseReceiverUrl(v['public_url']) }),
    max_attempts: int(v['max_attempts'], 'max_attempts', 1, 50, 8),
    timeout_ms: int(v['timeout_ms'], 'timeout_ms', 100, 60_000, 5000),
  });
}
