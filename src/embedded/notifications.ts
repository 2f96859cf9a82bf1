/**
 * Notifications in the embedded deployment (docs/notifications.md): the `webhooks` section of
 * `failclosed.json`, the outbox in the data directory (`notifications.db`, SQLite whatever the
 * storage backend) and the delivery loop, started once the Gate listens (its URL is the default
 * base of console links). Absent or without receivers: nothing is opened.
 */
import type { Clock } from '../kernel/index.js';
import { createNotifier, createSqliteOutbox } from '../control-plane/index.js';
import type { NotificationOutbox, Notifier, WebhookConfig } from '../control-plane/index.js';
import { notificationsPath } from './data-dir.js';

/** The notifier of a running deployment and its outbox. */
export interface EmbeddedNotifications {
  readonly notifier: Notifier;
  readonly outbox: NotificationOutbox;
  /** Starts delivering; `gateUrl` is the base of links unless `public_url` is set. */
  start(gateUrl: string): void;
  close(): Promise<void>;
}

export { notificationsPath };

/** Opens the outbox and the notifier when `config` names at least one receiver. */
export function openNotifications(
  dir: string,
  config: WebhookConfig | undefined,
  clock: Clock,
): EmbeddedNotifications | undefined {
  if (config === undefined || config.receivers.length === 0) return undefined;
  const outbox = createSqliteOutbox(notificationsPath(dir));
  let base = 'http://127.0.0.1';
  const notifier = createNotifier({
    config,
    outbox,
    now: clock,
    baseUrl: () => base,
    onDropped: (m) => void process.stderr.write(`failclosed: ${m}\n`),
  });
  return {
    notifier,
    outbox,
    start(gateUrl) {
      base = gateUrl;
      notifier.start();
    },
    async close() {
      await notifier.stop();
      outbox.close();
    },
  };
}
