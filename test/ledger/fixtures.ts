/** Shared fixtures for ledger and verifier tests: temp SQLite files, a checkpoint key, a clock, sample entries. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noteSignerFor, signingKeyFromSeed, type NoteSigner } from '../../src/kernel/signing/index.js';
import { sha256Hex, type Clock } from '../../src/kernel/index.js';
import {
  createLedger,
  createSqliteLedgerStore,
  type EntryInput,
  type EntryType,
  type Ledger,
  type LedgerOptions,
  type LedgerStore,
  type SqliteLedgerStore,
} from '../../src/ledger/index.js';

export const ORIGIN = 'failclosed.local/test-ledger';

/** A deterministic checkpoint signer named after {@link ORIGIN}. */
export function testSigner(seedByte = 7, name = ORIGIN): NoteSigner {
  return noteSignerFor(name, signingKeyFromSeed(Buffer.alloc(32, seedByte)).privateKey);
}

/** A clock that advances 1 ms per reading from a fixed start. */
export function steppingClock(start = Date.UTC(2025, 0, 1)): Clock {
  let t = start;
  return () => t++;
}

/** A temp directory removed by the returned cleanup. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'failclosed-ledger-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A fresh SQLite store in its own temp directory. */
export function tempSqliteStore(opts: { busyTimeoutMs?: number } = {}): {
  store: SqliteLedgerStore;
  path: string;
  cleanup: () => void;
} {
  const { dir, cleanup } = tempDir();
  const path = join(dir, 'ledger.db');
  const store = createSqliteLedgerStore({ path, ...opts });
  return {
    store,
    path,
    cleanup: () => {
      if (store.database.open) store.database.close();
      cleanup();
    },
  };
}

/** Opens a ledger over `store` with the test signer and a stepping clock. */
export function openLedger(
  store: LedgerStore,
  extra: {
    checkpointEvery?: { entries?: number; ms?: number };
    clock?: Clock;
    observer?: LedgerOptions['observer'];
  } = {},
): Promise<Ledger> {
  return createLedger({
    store,
    clock: extra.clock ?? steppingClock(),
    checkpointSigner: testSigner(),
    origin: ORIGIN,
    ...(extra.checkpointEvery !== undefined ? { checkpointEvery: extra.checkpointEvery } : {}),
    ...(extra.observer !== undefined ? { observer: extra.observer } : {}),
  });
}

/** The raw request referenced by every sample `gateway.accepted`; store it with {@link seedEvidence}. */
export const SAMPLE_REQUEST = Buffer.from('{"action":"echo","parameters":{"text":"hi"}}');
const SAMPLE_REQUEST_SHA = sha256Hex(SAMPLE_REQUEST);

/** Stores {@link SAMPLE_REQUEST} as evidence. */
export async function seedEvidence(ledger: Ledger): Promise<void> {
  await ledger.putEvidence(SAMPLE_REQUEST, 'application/json');
}

const SAMPLES: readonly [EntryType, EntryInput['payload']][] = [
  ['gateway.accepted', { request_sha256: SAMPLE_REQUEST_SHA, tool: 'echo', client: 'agent-1' }],
  [
    'decision',
    { decision_id: 'd-1', outcome: 'allow', policy_bundle: 'b'.repeat(64), rules_fired: ['p1'], risk: 'low' },
  ],
  ['envelope.issued', { decision_id: 'd-1', jti: 'j-1', exp: 1_700_000_000 }],
  [
    'execution.receipt',
    { decision_id: 'd-1', jti: 'j-1', status: 'ok', duration_ms: 12, result_sha256: 'c'.repeat(64) },
  ],
  ['gateway.completed', { tool: 'echo', status: 200, outcome: 'ok' }],
  ['denial', { code: 'ERR_POLICY_DENY', stage: 'policy', tool: 'rm' }],
];

/** A valid entry input number `i` (cycling through realistic types), in trace `t-<i / 6>`. */
export function sampleInput(i: number, tenant = 'acme'): EntryInput {
  const [type, payload] = SAMPLES[i % SAMPLES.length]!;
  const trace = Math.floor(i / SAMPLES.length);
  return {
    type,
    trace_id: `t-${trace}`,
    request_id: `r-${trace}`,
    tenant,
    actor: { id: 'agent-1', role: 'agent' },
    payload,
  };
}

/** Opens a ledger, seeds evidence and appends `n` sample entries one by one (so the checkpoint cadence is exact). */
export async function ledgerWith(
  store: LedgerStore,
  n: number,
  checkpointEvery?: { entries?: number },
): Promise<Ledger> {
  const ledger = await openLedger(store, checkpointEvery !== undefined ? { checkpointEvery } : {});
  await seedEvidence(ledger);
  for (let i = 0; i < n; i++) await ledger.append(sampleInput(i));
  return ledger;
}

/** The auditor who exports in tests. */
export const AUDITOR = { id: 'auditor-1', role: 'auditor' } as const;

/** A store that delegates to `inner` except for `overrides` (fault injection and spying on a real store). */
export function wrapStore(inner: LedgerStore, overrides: Partial<LedgerStore>): LedgerStore {
  return { ...inner, ...overrides };
}
