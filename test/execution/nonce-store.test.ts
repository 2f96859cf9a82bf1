import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryNonceStore, createSqliteNonceStore } from '../../src/execution/index.js';
import type { NonceStore } from '../../src/execution/index.js';
import { runNonceStoreContract } from './nonce-store.contract.js';

runNonceStoreContract('memory', () => {
  const store = createMemoryNonceStore();
  // Every "connection" of the memory backend is the same map; close is per backend.
  const view: NonceStore = {
    consume: (i) => store.consume(i),
    void: (i) => store.void(i),
    prune: (i) => store.prune(i),
    close: () => Promise.resolve(),
  };
  let handedOut = 0;
  return Promise.resolve({
    open: () => {
      handedOut += 1;
      // The first handle owns the store so the close-then-consume case is observable.
      return Promise.resolve(handedOut === 1 ? store : view);
    },
    destroy: () => store.close(),
  });
});

runNonceStoreContract('sqlite', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fc-nonce-'));
  const path = join(dir, 'nonces.db');
  return Promise.resolve({
    open: () => Promise.resolve(createSqliteNonceStore({ path, now: () => 1_700_000_000_000 })),
    destroy: () => {
      rmSync(dir, { recursive: true, force: true });
      return Promise.resolve();
    },
  });
});
