/**
 * Brings a data directory of the three-file layout (`ledger.db`, `state.db`, `nonces.db`) to the
 * one-file layout: every table of `state.db` and `nonces.db` is copied into `ledger.db` in one
 * transaction, with a marker row, and the old file is then renamed `*.merged` (kept for the
 * operator; never read again). A crash before the commit leaves the old files in use at the next
 * open, which merges again from the start; a crash after it leaves the marker, and the next open
 * only renames. The old file is first brought to this build's schema by the stores' own
 * migrations (`migrate`), so both sides have the same columns; a file newer than this build
 * refuses to open (`SchemaVersionError`), as the stores do.
 */
import { existsSync, renameSync } from 'node:fs';
import { basename } from 'node:path';
import type { SqliteCommitUnit } from '../../kernel/index.js';

/** Tables that belong to their file only (its readiness probe, its writer lock's epoch). */
const LOCAL_TABLES = new Set(['readiness_probe', 'writer_epoch']);

/**
 * Tables a trigger of this file fills from another as its rows are copied: each approver's
 * summary of their counted approvals (approvals version 6). Copied as well, they would be counted
 * twice whenever they came before the history.
 */
const DERIVED_TABLES = new Set([
  'approval_activity_totals',
  'approval_activity_tenants',
  'approval_activity_hours',
]);

/**
 * One-row tables whose row the stores create with a default: the merged row is the stricter of
 * the two (an engaged kill switch, the higher nonce prune horizon), never a laxer one.
 */
const STRICTER: Readonly<Record<string, string>> = {
  kill_switch: `UPDATE main.kill_switch SET engaged = 1 WHERE id = 1
    AND EXISTS (SELECT 1 FROM legacy.kill_switch WHERE id = 1 AND engaged IS NOT 0)`,
  envelope_nonce_horizon: `UPDATE main.envelope_nonce_horizon SET horizon = MAX(horizon,
    COALESCE((SELECT horizon FROM legacy.envelope_nonce_horizon WHERE id = 1), horizon)) WHERE id = 1`,
};

/**
 * Merges the SQLite file at `path` (if it exists) into the unit's database. `migrate` opens and
 * closes the stores that own the file's tables over it, bringing its schema to this build's.
 */
export async function mergeLegacyFile(
  unit: SqliteCommitUnit,
  path: string,
  migrate: (path: string) => Promise<void>,
): Promise<void> {
  if (!existsSync(path)) return;
  const db = unit.db;
  const file = basename(path);
  // The ledger store's schema (version 2) made the marker table.
  const done = db.prepare('SELECT 1 AS one FROM failclosed_merged WHERE file = ?').get(file) !== undefined;
  // Merged before, and merged away: an old file back beside it was written by something else
  // (an older build, a restored backup). Which rows are current cannot be known: refuse.
  if (done && existsSync(`${path}.merged`))
    throw new Error(
      `${file} reappeared after it was merged into the ledger's file (${file}.merged is the merged one): ` +
        'refusing to start; move it away once its content is known to be obsolete',
    );
  if (!done) {
    await migrate(path);
    db.prepare('ATTACH DATABASE ? AS legacy').run(path);
    try {
      unit.writeNow(() => {
        const tables = db
          .prepare<[], { name: string; sql: string }>(
            "SELECT name, sql FROM legacy.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
          )
          .all();
        for (const { name, sql } of tables) {
          if (LOCAL_TABLES.has(name) || DERIVED_TABLES.has(name)) continue;
          const mainCols = new Set(
            db
              .prepare<[], { name: string }>(`SELECT name FROM pragma_table_info('${name}', 'main')`)
              .all()
              .map((c) => c.name),
          );
          if (mainCols.size === 0) throw new Error(`table ${name} of ${file} has no counterpart`);
          const cols = db
            .prepare<[], { name: string }>(`SELECT name FROM pragma_table_info('${name}', 'legacy')`)
            .all()
            .map((c) => c.name)
            .filter((c) => mainCols.has(c))
            .map((c) => `"${c}"`);
          // Row ids kept where the table has them: prunes go by insertion order.
          const rowid = /WITHOUT\s+ROWID/i.test(sql) ? [] : ['rowid'];
          const list = [...rowid, ...cols].join(', ');
          const stricter = STRICTER[name];
          // Rows already here win (only the stores' defaults, in a directory merged once).
          if (stricter !== undefined) db.exec(stricter);
          else db.exec(`INSERT OR IGNORE INTO main."${name}" (${list}) SELECT ${list} FROM legacy."${name}"`);
        }
        db.prepare('INSERT INTO failclosed_merged (file, merged_at) VALUES (?, ?)').run(
          file,
          new Date().toISOString(),
        );
      });
    } finally {
      db.exec('DETACH DATABASE legacy');
    }
  }
  for (const suffix of ['', '-wal', '-shm'])
    if (existsSync(path + suffix)) renameSync(path + suffix, `${path}.merged${suffix}`);
}
