/**
 * PostgreSQL backends of gate replicas on one test database, for the tests of several gates
 * sharing one ledger (SPEC §4): each opened backend and ledger is closed after the test, the
 * latest first.
 */
import { afterEach } from 'vitest';
import { createLedger, type EntryInput, type Ledger, type LedgerStore } from '../../src/ledger/index.js';
import type { StorageBackend } from '../../src/storage/index.js';
import { openPostgresBackend } from '../../src/storage/postgres/index.js';
import { ORIGIN, steppingClock, testSigner } from '../ledger/fixtures.js';

/** Closeable things a test opened. */
interface Closeable {
  close(): Promise<void>;
}

/** Registers the clean-up; `backendOn(schema)` opens a replica's backend (200 ms heartbeat). */
export function useSharedBackends(pgdb: { readonly url: string }): {
  readonly backendOn: (schema: string) => Promise<StorageBackend>;
  readonly track: <T extends Closeable>(opened: T) => T;
  readonly replica: (
    schema: string,
    wrap?: (store: LedgerStore) => LedgerStore,
  ) => Promise<{ backend: StorageBackend; ledger: Ledger }>;
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
  const backendOn = async (schema: string): Promise<StorageBackend> =>
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
    );
  /** A replica: a backend with its instance lease and a ledger writer over its store, as `wrap` makes it. */
  const replica = async (schema: string, wrap: (store: LedgerStore) => LedgerStore = (x) => x) => {
    const backend = await backendOn(schema);
    await backend.acquireWriter({ wait: false });
    const ledger = track(
      await createLedger({
        store: wrap(backend.ledger),
        clock: steppingClock(),
        checkpointSigner: testSigner(),
        origin: ORIGIN,
        checkpointEvery: { entries: 64 },
      }),
    );
    return { backend, ledger };
  };
  return { track, backendOn, replica };
}

/** A decision entry numbered `i` (its own trace, request and decision id). */
export const note = (i: number): EntryInput => ({
  type: 'decision',
  trace_id: `t-${i}`,
  request_id: `r-${i}`,
  tenant: 'acme',
  actor: { id: 'control-plane', role: 'control-plane' },
  payload: { outcome: 'allow', decision_id: `d-${i}` },
});
