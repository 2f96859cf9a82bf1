/**
 * The helpers every offline check shares, and the two checks that only pass on what the context
 * found (SPEC §4 "hash-chained … signed checkpoints"; OE-INV-016, GEI audit chain, L7 ledger
 * protection): a finding names its entry by ledger index when the entry parsed and by position
 * when it did not; proofs are at most 128 lower-hex digests; an edited entry is
 * ENTRY_HASH_MISMATCH at that entry; a checkpoint signed by another key, or a bundle ledger key
 * that is not the pinned one, is named by checkpoint-signature.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createPublicKey } from 'node:crypto';
import { vkeyFor } from '../../src/kernel/index.js';
import { decodeProof, entryFinding, isHex64, parsedViews } from '../../src/verify/checks/util.js';
import { verifyBundle } from '../../src/verify/index.js';
import { findingsOf } from './forge.js';
import { ORIGIN, testSigner } from '../ledger/fixtures.js';
import { makeBundle, mutable, text } from './helpers.js';

const HASH = 'ab'.repeat(32);

describe('OE-INV-016: findings name their entry, proofs are bounded lower-hex digests', () => {
  it('an entry that parsed is named by its ledger index and position; one that did not, by position only', () => {
    const parsed = { position: 3, entry: { index: 41 } } as unknown as Parameters<typeof entryFinding>[0];
    expect(entryFinding(parsed, 'ENTRY_HASH_MISMATCH', 'x')).toMatchObject({
      code: 'ENTRY_HASH_MISMATCH',
      position: 3,
      index: 41,
    });
    expect(entryFinding(parsed, 'ENTRY_HASH_MISMATCH', 'x').message).toMatch(/^entry 41: /);
    const unparsed = { position: 3, problem: 'bad' };
    const f = entryFinding(unparsed, 'ENTRY_MALFORMED', 'x');
    expect(f).toEqual({ code: 'ENTRY_MALFORMED', message: f.message, position: 3 });
    expect('index' in f).toBe(false);
    expect(f.message).toMatch(/^entry at position 3: /);
  });

  it('parsedViews keeps exactly the views whose entry parsed, in order', () => {
    const a = { position: 0, entry: { index: 0 } };
    const b = { position: 1, problem: 'bad' };
    const c = { position: 2, entry: { index: 1 } };
    expect(parsedViews([a, b, c] as never)).toEqual([a, c]);
    expect(parsedViews([b] as never)).toEqual([]);
  });

  it('a proof is a list of at most 128 lower-hex SHA-256 digests', () => {
    expect(decodeProof([])).toEqual([]);
    expect(decodeProof([HASH, HASH])).toEqual([Buffer.from(HASH, 'hex'), Buffer.from(HASH, 'hex')]);
    expect(decodeProof(Array(128).fill(HASH))).toHaveLength(128);
    expect(decodeProof(Array(129).fill(HASH))).toBeUndefined();
    for (const bad of [
      HASH,
      { 0: HASH },
      [HASH, 7],
      [HASH.toUpperCase()],
      [`${HASH}0`],
      [`x${HASH}`],
      [`${HASH.slice(1)}g`],
      [HASH.slice(2)],
    ]) {
      expect(decodeProof(bad)).toBeUndefined();
    }
  });

  it('isHex64 accepts exactly 64 lower-hex digits', () => {
    expect(isHex64(HASH)).toBe(true);
    for (const bad of [
      7,
      null,
      HASH.toUpperCase(),
      `${HASH}0`,
      `0${HASH}`,
      HASH.slice(1),
      `${HASH.slice(1)}g`,
    ]) {
      expect(isHex64(bad)).toBe(false);
    }
  });
});

describe('GEI audit chain: entry hash and checkpoint signature, each named by its check', () => {
  let base: Awaited<ReturnType<typeof makeBundle>>;
  beforeAll(async () => {
    base = await makeBundle(4);
  });

  it('an entry edited without its hash: ENTRY_HASH_MISMATCH at that entry only', () => {
    const m = mutable(base.text);
    m['entries'][2].payload.edited = true;
    const r = verifyBundle(text(m), { trustedKey: base.vkey });
    expect(findingsOf(r, 'entry-hash').map((f) => ({ code: f.code, index: f.index }))).toEqual([
      { code: 'ENTRY_HASH_MISMATCH', index: m['entries'][2].index },
    ]);
    expect(findingsOf(verifyBundle(base.text, { trustedKey: base.vkey }), 'entry-hash')).toEqual([]);
  });

  it('a bundle checked under another pinned ledger key: LEDGER_KEY and CHECKPOINT_SIGNATURE', () => {
    const other = testSigner(9);
    const r = verifyBundle(base.text, { trustedKey: vkeyFor(ORIGIN, createPublicKey(other.privateKey)) });
    expect(findingsOf(r, 'checkpoint-signature').map((f) => f.code)).toEqual([
      'LEDGER_KEY',
      'CHECKPOINT_SIGNATURE',
    ]);
    expect(r.exitCode).toBe(1);
  });

  it('a checkpoint whose signature was altered: a checkpoint-signature finding', () => {
    const m = mutable(base.text);
    const note = m['checkpoint'] as string;
    const sig = note.lastIndexOf(' ');
    const last = note[sig + 5] === 'A' ? 'B' : 'A';
    m['checkpoint'] = `${note.slice(0, sig + 5)}${last}${note.slice(sig + 6)}`;
    const r = verifyBundle(text(m), { trustedKey: base.vkey });
    expect(findingsOf(r, 'checkpoint-signature').map((f) => f.code)).toEqual(['CHECKPOINT_SIGNATURE']);
  });
});
