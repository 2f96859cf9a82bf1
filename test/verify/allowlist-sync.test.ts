/**
 * The verifier keeps its own copy of the entry format (it may import the kernel only, SPEC §5);
 * this test fails when the copy and the ledger's table differ (OE-INV-009, L7 Secret Handling),
 * and checks both hash an entry identically.
 */
import { describe, expect, it } from 'vitest';
import * as ledger from '../../src/ledger/index.js';
import * as verify from '../../src/verify/index.js';
import { canonicalize, sha256Hex, type JsonValue } from '../../src/kernel/index.js';
import { chain } from '../ledger/store.contract.js';
import { tempSqliteStore, openLedger, sampleInput } from '../ledger/fixtures.js';

describe('ledger and verifier agree on the entry format', () => {
  it('same entry types and payload allowlists', () => {
    expect([...verify.ENTRY_TYPES]).toEqual([...ledger.ENTRY_TYPES]);
    expect(verify.PAYLOAD_ALLOWLIST).toEqual(ledger.PAYLOAD_ALLOWLIST);
    expect(verify.GENESIS_PREV_HASH).toBe(ledger.GENESIS_PREV_HASH);
  });

  it('same entry hash and Merkle leaf, equal to SHA-256 of canonicalize(entry without entry_hash)', () => {
    for (const e of chain(12)) {
      const { entry_hash: _h, ...body } = e;
      expect(sha256Hex(canonicalize(body as unknown as JsonValue))).toBe(e.entry_hash);
      expect(ledger.entryJson(e)).toBe(canonicalize(e as unknown as JsonValue));
      expect(verify.computeEntryHash(e)).toBe(e.entry_hash);
      expect(verify.entryLeaf(e.entry_hash).equals(ledger.entryLeafHash(e.entry_hash))).toBe(true);
    }
  });

  it('entries sealed by the writer are stored as their RFC 8785 encoding and hash as canonicalize says', async () => {
    const t = tempSqliteStore();
    try {
      const l = await openLedger(t.store);
      const odd = { ...sampleInput(1), tenant: 'ténant "q"\n\u0001', actor: { id: 'é😀', role: '</script>' } };
      const r = await l.append(odd);
      const row = t.store.database.prepare('SELECT body FROM entries WHERE idx = ?').get(r.index) as { body: string };
      const stored = (await t.store.entry(r.index))!;
      expect(row.body).toBe(canonicalize(stored as unknown as JsonValue));
      const { entry_hash: _h, ...body } = stored;
      expect(sha256Hex(canonicalize(body as unknown as JsonValue))).toBe(r.entry_hash);
      await l.close();
    } finally {
      t.cleanup();
    }
  });
});
