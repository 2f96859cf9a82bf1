/** Builds exported bundles for verifier tests and tampers with them the way an attacker would. */
import { canonicalize, rootOf, formatCheckpoint, type JsonValue } from '../../src/kernel/index.js';
import { signNote, type NoteSigner } from '../../src/kernel/signing/index.js';
import {
  computeEntryHash,
  entryLeafHash,
  exportBundle,
  type ExportedBundle,
} from '../../src/ledger/index.js';
import { AUDITOR, openLedger, tempSqliteStore } from '../ledger/fixtures.js';
import { appendRealistic, LINKAGE_EXPORT } from './realistic.js';

/** A mutable bundle as parsed by JSON.parse (tests poke at it freely). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type MutableBundle = Record<string, any>;

/**
 * Exports a bundle of a fresh ledger with `n` entries (plus the audit.export entry): whole,
 * linkage-complete call traces of five entries each (see realistic.ts), then `audit.read` records.
 */
export async function makeBundle(
  n: number,
  opts: { checkpointEvery?: number; scope?: { from?: number; to?: number; traceId?: string } } = {},
): Promise<ExportedBundle & { vkey: string; checkpoints: string[] }> {
  const t = tempSqliteStore();
  try {
    const ledger = await openLedger(
      t.store,
      opts.checkpointEvery !== undefined ? { checkpointEvery: { entries: opts.checkpointEvery } } : {},
    );
    await appendRealistic(ledger, n);
    const exported = await exportBundle({ ledger, actor: AUDITOR, ...LINKAGE_EXPORT, ...opts.scope });
    const checkpoints = (await t.store.checkpoints()).map((c) => c.note);
    const vkey = ledger.ledgerKey.vkey;
    await ledger.close();
    return { ...exported, vkey, checkpoints };
  } finally {
    t.cleanup();
  }
}

/** Parses bundle text into a mutable object. */
export function mutable(text: string): MutableBundle {
  return JSON.parse(text) as MutableBundle;
}

/** Serializes a tampered bundle. */
export function text(b: MutableBundle): string {
  return JSON.stringify(b);
}

/** Recomputes an entry's hash after an edit (a careful attacker). */
export function rehash(entry: MutableBundle): void {
  const { entry_hash: _drop, ...body } = entry;
  entry['entry_hash'] = computeEntryHash(body as never);
}

/** Re-links and re-hashes every entry from `from` on (an attacker rewriting history after an edit). */
export function rechain(entries: MutableBundle[], from: number): void {
  for (let i = from; i < entries.length; i++) {
    const e = entries[i]!;
    if (i > 0) e['prev_hash'] = entries[i - 1]!['entry_hash'];
    rehash(e);
  }
}

/** Re-signs the bundle's checkpoint over its (complete) entries with `signer` and installs its key. */
export function resign(b: MutableBundle, signer: NoteSigner, vkey: string, jwk: JsonValue): void {
  const leaves = (b['entries'] as { entry_hash: string }[]).map((e) => entryLeafHash(e.entry_hash));
  const body = formatCheckpoint({
    origin: b['origin'] as string,
    size: leaves.length,
    rootHash: rootOf(leaves),
  });
  b['checkpoint'] = signNote(body, signer);
  b['ledger_key'] = { vkey, jwk };
  b['older_checkpoints'] = [];
}

/** Canonical text of a value (for size-independent comparisons). */
export const canon = (v: JsonValue): string => canonicalize(v);
