/**
 * PostgreSQL backends of gate replicas on one test database, for the tests of several gates
 * sharing one ledger (SPEC §4): each opened backend and ledger is closed after the test, the
 * latest first.
 */
import { afterEach } from 'vitest';
import type { StorageBackend } from '../../src/storage/index.js';
import { openPostgresBackend } from '../../src/storage/postgres/index.js';

/** Closeable things a test opened. */
interface Closeable {
  close(): Promise<void>;
}

/** Registers the clean-up; `backendOn(schema)` opens a replica's backend (200 ms heartbeat). */
export function useSharedBackends(pgdb: { readonly url: string }): {
  readonly backendOn: (schema: string) => Promise<StorageBackend>;
  readonly track: <T extends Closeable>(opened: T) => T;
} {
  let opened: Closeable[] = [];
  afterEach(async () => {
    for (const o of opened.reverse()) await o.close().catch(() => undefined);
    opened = [];
  });
  const track = <T extends Closeable>(o: T): T => {
    opened.push(o);
    return o;
  };
  return {
    track,
    backendOn: async (schema) =>
      track(
        await openPostgresBackend({
          url: pgdb.url,
          schema,
          clock: Date.now,
          retainAfterExpSec: 600,
          replayRetentionMs: 600_000,
          maxConnections: 4,
          heartbeatMs: 200,
        }),
      ),
  };
}
