/**
 * The ledger writer and the offline verifier share one entry format, defined in the kernel
 * (`src/kernel/ledger-format.ts`; the verifier may import the kernel only, SPEC §5). This test
 * fails if either face stops re-exporting the kernel's objects (a private copy could drift from
 * the allowlist, OE-INV-009, L7 Secret Handling), and checks the shared entry hash against
 * `canonicalize` of the whole entry (OE-INV-016).
 */
import { describe, expect, it } from 'vitest';
import * as kernel from '../../src/kernel/index.js';
import * as ledger from '../../src/ledger/index.js';
import * as verify from '../../src/verify/index.js';
import { canonicalize, sha256Hex, type JsonValue } from '../../src/kernel/index.js';
import { chain } from '../ledger/store.contract.js';
import { tempSqliteStore, openLedger, sampleInput } from '../ledger/fixtures.js';

describe('ledger and verifier share the kernel entry format', () => {
  it('both faces expose the very same kernel objects', () => {
    expect(ledger.ENTRY_TYPES).toBe(kernel.ENTRY_TYPES);
    expect(verify.ENTRY_TYPES).toBe(kernel.ENTRY_TYPES);
    expect(ledger.PAYLOAD_ALLOWLIST).toBe(kernel.PAYLOAD_ALLOWLIST);
    expect(verify.PAYLOAD_ALLOWLIST).toBe(kernel.PAYLOAD_ALLOWLIST);
    expect(ledger.isEntryType).toBe(kernel.isEntryType);
    expect(ledger.disallowedPayloadFields).toBe(kernel.disallowedPayloadFields);
    expect(ledger.GENESIS_PREV_HASH).toBe(kernel.GENESIS_PREV_HASH);
    expect(verify.GENESIS_PREV_HASH).toBe(kernel.GENESIS_PREV_HASH);
    expect(ledger.computeEntryHash).toBe(kernel.computeEntryHash);
    expect(verify.computeEntryHash).toBe(kernel.computeEntryHash);
    expect(ledger.entryLeafHash).toBe(kernel.entryLeafHash);
    expect(verify.entryLeaf).toBe(kernel.entryLeafHash);
  });

  it('every entry type has an allowlist row, and a field off the row is reported', () => {
    expect(Object.keys(kernel.PAYLOAD_ALLOWLIST).sort()).toEqual([...kernel.ENTRY_TYPES].sort());
    expect(kernel.isEntryType('decision')).toBe(true);
    expect(kernel.isEntryType('decision.raw')).toBe(false);
    expect(kernel.disallowedPayloadFields('decision', { decision_id: 'd', api_key: 'x' })).toEqual([
      'api_key',
    ]);
    expect(kernel.disallowedPayloadFields('denial', { code: 'ERR_X', reason: 'r' })).toEqual([]);
  });

  it('entry hash and Merkle leaf equal SHA-256 of canonicalize(entry without entry_hash)', () => {
    for (const e of chain(12)) {
      const { entry_hash: _h, ...body } = e;
      expect(kernel.canonicalEntryBody(e)).toBe(canonicalize(body as unknown as JsonValue));
      expect(sha256Hex(canonicalize(body as unknown as JsonValue))).toBe(e.entry_hash);
      expect(kernel.computeEntryHash(e)).toBe(e.entry_hash);
      expect(ledger.entryJson(e)).toBe(canonicalize(e as unknown as JsonValue));
      expect(
        kernel.entryLeafHash(e.entry_hash).equals(kernel.leafHash(Buffer.from(e.entry_hash, 'hex'))),
      ).toBe(true);
    }
  });

  it('entries sealed by the writer are stored as their RFC 8785 encoding and hash as canonicalize says', async () => {
    const t = tempSqliteStore();
    try {
      const l = await openLedger(t.store);
      const odd = {
        ...sampleInput(1),
        tenant: 'ténant "q"\n\u0001',
        actor: { id: 'é😀', role: '</script>' },
      };
      const r = await l.append(odd);
      const row = t.store.database.prepare('SELECT body FROM entries WHERE idx = ?').get(r.index) as {
        body: string;
      };
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
