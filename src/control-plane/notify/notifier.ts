/**
 * Signed webhooks from the durable outbox (docs/notifications.md). Notifications are never on
 * the enforcement path: `notify` only writes the outbox (and swallows any failure of its own),
 * delivery runs in its own loop, and nothing a receiver answers is read beyond its status code.
 * A failing, slow or hostile receiver can therefore not delay, change or allow any decision.
 * Each delivery is retried with exponential backoff and jitter, at most `max_attempts` times;
 * its outcome is kept on its outbox row.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../../kernel/index.js';
import type { WebhookConfig, WebhookReceiver } from './config.js';
import { consoleLink, noticeBody, type ApprovalNotice } from './notice.js';
import type { NotificationOutbox, OutboxItem } from './outbox.js';
import { signWebhook } from './sign.js';

/** Sends one request; resolves to its HTTP status. Rejects on network failure or abort. */
export type WebhookPost = (
  url: string,
  headers: Readonly<Record<string, string>>,
  body: string,
  signal: AbortSignal,
) => Promise<number>;

/** The default sender: `fetch`, redirects not followed (a redirect is not a delivery). */
export const fetchPost: WebhookPost = async (url, headers, body, signal) => {
  const res = await fetch(url, { method: 'POST', headers, body, signal, redirect: 'manual' });
  // The body is never read: a receiver's answer has no effect beyond its status.
  await res.body?.cancel().catch(() => undefined);
  return res.status;
};

/** Dependencies of the notifier. */
export interface NotifierDeps {
  readonly config: WebhookConfig;
  readonly outbox: NotificationOutbox;
  readonly now: Clock;
  /** Where links point (`public_url`, else the Gate's URL once it listens). */
  readonly baseUrl: () => string;
  readonly post?: WebhookPost;
  /** [0, 1): the backoff jitter. */
  readonly random?: () => number;
}

/** The notifier. */
export interface Notifier {
  /** Writes one outbox row per receiver that wants `n`'s event. Never throws; a failure is counted. */
  notify(n: ApprovalNotice): void;
  /** Tries every due delivery once (not those already in flight); resolves to how many were tried. */
  deliverDue(): Promise<number>;
  /** Runs `deliverDue` every `pollMs` (default 1000) until stopped. */
  start(pollMs?: number): void;
  /** Stops the loop and aborts deliveries in flight (they stay pending, tried again after a restart). */
  stop(): Promise<void>;
  /** Notices that could not be written to the outbox. */
  readonly dropped: () => number;
}

/** Backoff before attempt `attempts + 1`: 1 s doubling up to 1 h, half of it jittered. */
export function backoffMs(attempts: number, random: () => number): number {
  const full = Math.min(3_600_000, 1000 * 2 ** Math.max(0, attempts - 1));
  return Math.round(full / 2 + (full / 2) * random());
}

/** Creates the notifier. */
export function createNotifier(deps: NotifierDeps): Notifier {
  const post = deps.post ?? fetchPost;
  const random = deps.random ?? Math.random;
  const receivers = new Map<string, WebhookReceiver>(deps.config.receivers.map((r) => [r.id, r]));
  const inflight = new Map<string, AbortController>();
  let dropped = 0;
  let timer: ReturnType<typeof setInterval> | undefined;
  let running: Promise<unknown> = Promise.resolve();

  async function deliver(item: OutboxItem, r: WebhookReceiver): Promise<void> {
    const abort = new AbortController();
    inflight.set(item.id, abort);
    const timeout = setTimeout(() => abort.abort(), deps.config.timeout_ms);
    const ts = Math.floor(deps.now() / 1000);
    let status: number | null = null;
    let error: string | null = null;
    try {
      status = await post(
        r.url,
        {
          'content-type': 'application/json',
          'webhook-id': item.id,
          'webhook-timestamp': String(ts),
          'webhook-signature': signWebhook(r.secret, item.id, ts, item.body),
        },
        item.body,
        abort.signal,
      );
    } catch (err) {
      error = abort.signal.aborted ? 'timeout' : err instanceof Error ? err.message.slice(0, 200) : 'failed';
    } finally {
      clearTimeout(timeout);
      inflight.delete(item.id);
    }
    const attempts = item.attempts + 1;
    const at = deps.now();
    const ok = status !== null && status >= 200 && status < 300;
    const last = status === null ? null : status;
    const lastError = ok ? null : (error ?? `HTTP ${String(status)}`);
    if (ok)
      deps.outbox.record(item.id, {
        status: 'delivered',
        attempts,
        next_at: at,
        last_status: last,
        last_error: null,
        done_at: at,
      });
    else if (attempts >= deps.config.max_attempts)
      deps.outbox.record(item.id, {
        status: 'failed',
        attempts,
        next_at: at,
        last_status: last,
        last_error: lastError,
        done_at: at,
      });
    else
      deps.outbox.record(item.id, {
        status: 'pending',
        attempts,
        next_at: at + backoffMs(attempts, random),
        last_status: last,
        last_error: lastError,
        done_at: null,
      });
  }

  async function deliverDue(): Promise<number> {
    const due = deps.outbox.due(deps.now(), 64).filter((i) => !inflight.has(i.id));
    await Promise.all(
      due.map(async (item) => {
        const r = receivers.get(item.receiver);
        // A receiver removed from the configuration: its notices are given up.
        if (r === undefined) {
          const at = deps.now();
          deps.outbox.record(item.id, {
            status: 'failed',
            attempts: item.attempts,
            next_at: at,
            last_status: null,
            last_error: 'receiver no longer configured',
            done_at: at,
          });
          return;
        }
        await deliver(item, r);
      }),
    );
    return due.length;
  }

  return Object.freeze({
    notify(n: ApprovalNotice) {
      try {
        const at = deps.now();
        const link = consoleLink(deps.config.public_url ?? deps.baseUrl(), n.decision_id);
        const rows = deps.config.receivers
          .filter((r) => r.events.includes(n.event))
          .map((r) => ({
            id: `msg_${randomUUID().replace(/-/g, '')}`,
            receiver: r.id,
            event: n.event,
            body: noticeBody(r.format, n, link, at),
            created_at: at,
          }));
        if (rows.length > 0) deps.outbox.add(rows);
      } catch {
        // Never on the enforcement path: a notice that cannot be written is counted, not raised.
        dropped += 1;
      }
    },
    deliverDue,
    start(pollMs = 1000) {
      if (timer !== undefined) return;
      let busy = false;
      timer = setInterval(() => {
        // One round at a time (a tick during a slow round is skipped); a failing round is tried
        // again at the next tick.
        if (busy) return;
        busy = true;
        running = deliverDue()
          .catch(() => undefined)
          .finally(() => (busy = false));
      }, pollMs);
      timer.unref();
    },
    async stop() {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      for (const a of inflight.values()) a.abort();
      await running;
    },
    dropped: () => dropped,
  });
}
