/**
 * Notifications: signed webhooks when an approval waits or break-glass is used, from a durable
 * outbox, never on the enforcement path (docs/notifications.md).
 */
export { NOTICE_EVENTS, parseReceiver, parseReceiverUrl, parseWebhookConfig } from './config.js';
export type { NoticeEvent, ReceiverFormat, WebhookConfig, WebhookReceiver } from './config.js';
export { consoleLink, noticeBody, noticeData } from './notice.js';
export type { ApprovalNotice, NoticePreview } from './notice.js';
export { createSqliteOutbox } from './outbox.js';
export type { AttemptOutcome, DeliveryStatus, NotificationOutbox, OutboxItem } from './outbox.js';
export { backoffMs, createNotifier, fetchPost } from './notifier.js';
export type { Notifier, NotifierDeps, WebhookPost } from './notifier.js';
export { generateWebhookSecret, signWebhook, verifyWebhook, webhookKey } from './sign.js';
