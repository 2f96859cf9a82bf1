/**
 * `failclosed webhooks add|list|remove` (docs/notifications.md): edits the `webhooks` section of
 * the data directory's `failclosed.json` (0600, written whole and renamed into place). A new
 * receiver gets a fresh `whsec_` secret, printed once. The Gate reads the section when it starts:
 * restart it to apply a change. `list` never prints secrets; it shows the latest deliveries of
 * the outbox.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { parseJson } from '../kernel/index.js';
import type { JsonObject, JsonValue } from '../kernel/index.js';
import { generateWebhookSecret, parseReceiver } from '../control-plane/lean.js';
import { dataPaths, notificationsPath, readConfig } from '../embedded/lean.js';

/** Options of the webhooks commands. */
export const WEBHOOK_OPTIONS = {
  url: { type: 'string' },
  format: { type: 'string' },
  event: { type: 'string', multiple: true },
} as const;

/** Usage lines of the webhooks commands (part of the CLI usage). */
export const WEBHOOK_USAGE = `  webhooks add ID --url URL [--format standard|slack] [--event approval.requested|break_glass.used]...
                                              a signed webhook receiver (prints its whsec_ secret once);
                                              applied when the gate next starts
  webhooks list                               receivers (no secrets) and the latest deliveries
  webhooks remove ID
`;

interface Io {
  out(text: string): void;
  err(text: string): void;
}

/** A usage mistake (exit 2). */
export class WebhookUsageError extends Error {}

function readRaw(dir: string): JsonObject {
  readConfig(dir); // refuses a directory that is not initialised, or a malformed config
  return parseJson(readFileSync(dataPaths(dir).config), { maxBytes: 64 * 1024, maxDepth: 6 }) as JsonObject;
}

function writeRaw(dir: string, config: JsonObject): void {
  const path = dataPaths(dir).config;
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, path);
  // What was written must read back as a valid config.
  readConfig(dir);
}

function receiversOf(config: JsonObject): JsonObject[] {
  const w = config['webhooks'];
  const list = typeof w === 'object' && w !== null && !Array.isArray(w) ? (w as JsonObject)['receivers'] : [];
  return Array.isArray(list) ? (list as JsonObject[]) : [];
}

function withReceivers(config: JsonObject, receivers: JsonValue[]): JsonObject {
  const w = config['webhooks'];
  const base = typeof w === 'object' && w !== null && !Array.isArray(w) ? (w as JsonObject) : {};
  return { ...config, webhooks: { ...base, receivers } };
}

/** Runs `webhooks SUB [ID]`; resolves to the exit code. Rejects with {@link WebhookUsageError} for misuse. */
export async function runWebhookCommand(
  io: Io,
  dir: string,
  sub: string | undefined,
  id: string | undefined,
  v: { url?: string; format?: string; event?: string[] },
): Promise<number> {
  if (sub === 'add' && id !== undefined) {
    if (v.url === undefined) throw new WebhookUsageError('webhooks add ID --url URL');
    const config = readRaw(dir);
    const list = receiversOf(config);
    if (list.some((r) => r['id'] === id)) {
      io.err(`failclosed: a receiver ${id} exists already\n`);
      return 1;
    }
    let receiver;
    try {
      receiver = parseReceiver({
        id,
        url: v.url,
        secret: generateWebhookSecret(),
        format: v.format ?? 'standard',
        ...(v.event === undefined ? {} : { events: v.event }),
      });
    } catch (err) {
      throw new WebhookUsageError(err instanceof Error ? err.message : 'malformed receiver');
    }
    const entry: JsonObject = { ...receiver, events: [...receiver.events] };
    writeRaw(dir, withReceivers(config, [...list, entry]));
    io.out(
      `${JSON.stringify({ ...entry, note: 'the secret is shown once; restart the gate to apply' }, null, 2)}\n`,
    );
    return 0;
  }
  if (sub === 'remove' && id !== undefined) {
    const config = readRaw(dir);
    const list = receiversOf(config);
    if (!list.some((r) => r['id'] === id)) {
      io.err(`failclosed: no receiver ${id}\n`);
      return 1;
    }
    writeRaw(
      dir,
      withReceivers(
        config,
        list.filter((r) => r['id'] !== id),
      ),
    );
    io.out(`removed ${id}; restart the gate to apply\n`);
    return 0;
  }
  if (sub === 'list' && id === undefined) {
    const receivers = (readConfig(dir).webhooks?.receivers ?? []).map((r) => ({
      id: r.id,
      url: r.url,
      format: r.format,
      events: [...r.events],
    }));
    const path = notificationsPath(dir);
    let deliveries: JsonValue[] = [];
    if (existsSync(path)) {
      const { createSqliteOutbox } = await import('../control-plane/index.js');
      // Read-only: never creates, migrates or write-locks the file a running gate writes.
      const outbox = createSqliteOutbox(path, { readOnly: true });
      try {
        deliveries = outbox.list(20).map((d) => ({
          id: d.id,
          receiver: d.receiver,
          event: d.event,
          status: d.status,
          attempts: d.attempts,
          last_status: d.last_status,
          last_error: d.last_error,
          created_at: new Date(d.created_at).toISOString(),
        }));
      } finally {
        outbox.close();
      }
    }
    io.out(`${JSON.stringify({ receivers, deliveries }, null, 2)}\n`);
    return 0;
  }
  throw new WebhookUsageError('webhooks add ID --url URL | webhooks list | webhooks remove ID');
}
