/**
 * Signed webhooks from the durable outbox (docs/notifications.md). Notifications are never on
 * the enforcement path: `notify` only queues the notice in memory (and swallows any failure of
 * its own); the queue is written to the outbox on a later turn of the event loop (and before
 * every delivery round and at stop), so no outbox write, nor its wait for a busy file, runs in
 * the caller's step; a notice that cannot be written is counted and reported. Delivery runs in
 * its own loop, and nothing a receiver answers is read beyond its status code.
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
  /** Told when notices could not be written to the outbox (they are counted in `dropped` too). */
  readonly onDropped?: (message: string) => void;
}

/** The notifier. */
export interface Notifier {
  /**
   * Queues one outbox row per receiver that wants `n`'s event, in memory; they are written to the
   * outbox on a later turn of the event loop (or by {@link Notifier.flush}). Never throws and
   * never touches the outbox itself; a failure is counted.
   */
  notify(n: ApprovalNotice): void;
  /** Writes the queued notices to the outbox now; a notice that cannot be written is counted. Never throws. */
  flush(): void;
  /** Writes the queue, then tries every due delivery once (not those already in flight); resolves to how many were tried. */
  deliverDue(): Promise<number>;
  /** Runs `deliverDue` every `pollMs` (default 1000) until stopped. */
  start(pollMs?: number): void;
  /**
   * Writes the queue, stops the loop and aborts deliveries in flight: an aborted delivery is not
   * an attempt (its row stays pending, its attempts unchanged, tried again after a restart).
   */
  stop(): Promise<void>;
  /** Notices that could not be queued or written to the outbox. */
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
  // Deliveries aborted by stop(): not attempts.
  const stopped = new Set<string>();
  // Notices not yet written, one group of rows per notice (written in one transaction each).
  let queued: Parameters<NotificationOutbox['add']>[0][] = [];
  let scheduled = false;

  function flush(): void {
    const groups = queued;
    queued = [];
    let failed = 0;
    for (const rows of groups) {
      try {
        deps.outbox.add(rows);
      } catch {
        failed += 1;
      }
    }
    if (failed === 0) return;
    dropped += failed;
    try {
      deps.onDropped?.(`${failed} notice(s) could not be written to the webhook outbox`);
    } catch {
      // Reporting never throws into the caller.
    }
  }
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
    // Aborted by stop(), not by its timeout: no attempt was completed, the row stays as it was.
    const byStop = stopped.delete(item.id);
    if (byStop && status === null) return;
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
    flush();
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
        if (rows.length === 0) return;
        queued.push(rows);
        if (scheduled) return;
        scheduled = true;
        // Written on a later turn: never inside the caller's step (its decision lock).
        setImmediate(() => {
          scheduled = false;
          flush();
        });
      } catch {
        // Never on the enforcement path: a notice that cannot be queued is counted, not raised.
        dropped += 1;
      }
    },
    flush,
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
      flush();
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      for (const [id, a] of inflight) {
        stopped.add(id);
        a.abort();
      }
      await running;
    },
    dropped: () => dropped,
  });
}
