/**
 * The durable notification outbox (docs/notifications.md): one row per notice and receiver,
 * written before delivery is tried, so a restart loses no notice; each delivery's outcome is kept
 * on its row (`attempts`, `last_status`, `last_error`, `status`). SQLite in the data directory
 * (`notifications.db`: one connection, WAL, synchronous=FULL), whatever the storage backend.
 * Rows read back are parsed; a malformed one throws `TypeError`.
 */
import Database from 'better-sqlite3';
import { migrateSchema, type SchemaMigration } from '../../kernel/index.js';

/** Life of a delivery: `pending` until delivered or given up (`failed`). */
export type DeliveryStatus = 'pending' | 'delivered' | 'failed';

/** One notice for one receiver. */
export interface OutboxItem {
  /** The `webhook-id`, one per notice and receiver: the same on every attempt, so a receiver can drop repeats. */
  readonly id: string;
  readonly receiver: string;
  readonly event: string;
  /** The exact body sent (and signed). */
  readonly body: string;
  readonly status: DeliveryStatus;
  readonly attempts: number;
  /** ms: not tried again before. */
  readonly next_at: number;
  readonly created_at: number;
  /** The last attempt's HTTP status; null when it got none (network error, timeout). */
  readonly last_status: number | null;
  readonly last_error: string | null;
  /** ms: when it was delivered or given up. */
  readonly done_at: number | null;
}

/** The outcome of one attempt. */
export interface AttemptOutcome {
  readonly status: DeliveryStatus;
  readonly attempts: number;
  readonly next_at: number;
  readonly last_status: number | null;
  readonly last_error: string | null;
  readonly done_at: number | null;
}

/** The outbox. Every method is synchronous and durable on return; failures throw. */
export interface NotificationOutbox {
  add(items: readonly Pick<OutboxItem, 'id' | 'receiver' | 'event' | 'body' | 'created_at'>[]): void;
  /** Pending items due at `atMs`, oldest first. */
  due(atMs: number, limit: number): readonly OutboxItem[];
  /** The earliest `next_at` of a pending item, or undefined. */
  nextDue(): number | undefined;
  record(id: string, outcome: AttemptOutcome): void;
  /** The latest items, newest first. */
  list(limit: number): readonly OutboxItem[];
  close(): void;
}

const MIGRATIONS: readonly SchemaMigration[] = [
  {
    version: 1,
    name: 'webhook outbox',
    up: `CREATE TABLE IF NOT EXISTS webhook_outbox (
  id TEXT NOT NULL, receiver TEXT NOT NULL, event TEXT NOT NULL, body TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts INTEGER NOT NULL, next_at INTEGER NOT NULL, created_at INTEGER NOT NULL,
  last_status INTEGER, last_error TEXT, done_at INTEGER,
  PRIMARY KEY (id)
) STRICT;
CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox (status, next_at);`,
  },
];

type Row = Record<string, unknown>;

function bad(what: string): TypeError {
  return new TypeError(`webhook outbox: ${what} is malformed`);
}

const int = (v: unknown, what: string): number => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw bad(what);
  return v;
};
const text = (v: unknown, what: string): string => {
  if (typeof v !== 'string') throw bad(what);
  return v;
};

function parseItem(r: Row): OutboxItem {
  const status = r['status'];
  if (status !== 'pending' && status !== 'delivered' && status !== 'failed') throw bad('status');
  return Object.freeze({
    id: text(r['id'], 'id'),
    receiver: text(r['receiver'], 'receiver'),
    event: text(r['event'], 'event'),
    body: text(r['body'], 'body'),
    status,
    attempts: int(r['attempts'], 'attempts'),
    next_at: int(r['next_at'], 'next_at'),
    created_at: int(r['created_at'], 'created_at'),
    last_status: r['last_status'] === null ? null : int(r['last_status'], 'last_status'),
    last_error: r['last_error'] === null ? null : text(r['last_error'], 'last_error'),
    done_at: r['done_at'] === null ? null : int(r['done_at'], 'done_at'),
  });
}

/** Opens (creating if needed) the outbox at `path` (`:memory:` for tests). */
export function createSqliteOutbox(path: string): NotificationOutbox {
  const db = new Database(path);
  try {
    db.pragma('busy_timeout = 2000');
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    migrateSchema(db, 'webhooks', MIGRATIONS);
  } catch (err) {
    db.close();
    throw err;
  }
  const q = {
    add: db.prepare(
      `INSERT OR IGNORE INTO webhook_outbox (id, receiver, event, body, status, attempts, next_at, created_at)
        VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)`,
    ),
    due: db.prepare<[number, number], Row>(
      "SELECT * FROM webhook_outbox WHERE status = 'pending' AND next_at <= ? ORDER BY next_at, created_at LIMIT ?",
    ),
    next: db.prepare<[], Row>("SELECT min(next_at) AS n FROM webhook_outbox WHERE status = 'pending'"),
    record: db.prepare(
      `UPDATE webhook_outbox SET status = ?, attempts = ?, next_at = ?, last_status = ?, last_error = ?, done_at = ?
        WHERE id = ? AND status = 'pending'`,
    ),
    list: db.prepare<[number], Row>('SELECT * FROM webhook_outbox ORDER BY created_at DESC, id LIMIT ?'),
  };
  const addAll = db.transaction((items: Parameters<NotificationOutbox['add']>[0]) => {
    for (const i of items)
      q.add.run(i.id, i.receiver, i.event, i.body, Math.trunc(i.created_at), Math.trunc(i.created_at));
  });
  const outbox: NotificationOutbox = {
    add: (items) => void addAll(items),
    due: (atMs, limit) => Object.freeze(q.due.all(Math.trunc(atMs), limit).map(parseItem)),
    nextDue() {
      const n = q.next.get()?.['n'];
      return n === null || n === undefined ? undefined : int(n, 'next_at');
    },
    record(id, o) {
      q.record.run(o.status, o.attempts, Math.trunc(o.next_at), o.last_status, o.last_error, o.done_at, id);
    },
    list: (limit) => Object.freeze(q.list.all(limit).map(parseItem)),
    close: () => db.close(),
  };
  return Object.freeze(outbox);
}
