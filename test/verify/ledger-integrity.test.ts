/**
 * The ledger-protection checks of the offline verifier, one finding at a time (SPEC §4 "hash-chained
 * (any edit, deletion, insertion, reordering or truncation is detectable) and a Merkle tree … with
 * signed checkpoints …, inclusion proofs for any entry and consistency proofs between any two
 * checkpoints (detects rollback and split views)"; L7 ledger protection, GEI audit chain). Each
 * test asserts the finding code of the targeted check and the entry it names.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { formatCheckpoint, rootOf } from '../../src/kernel/index.js';
import { signNote } from '../../src/kernel/signing/index.js';
import { entryLeafHash } from '../../src/ledger/index.js';
import { verifyBundle, type VerifyReport } from '../../src/verify/index.js';
import { ORIGIN, testSigner } from '../ledger/fixtures.js';
import { findingsOf } from './forge.js';
import { makeBundle, mutable, rechain, rehash, text, type MutableBundle } from './helpers.js';
import { traceIdOf } from './realistic.js';
import { TINY_LIMITS, v2Lines } from './v2.js';

type Made = Awaited<ReturnType<typeof makeBundle>>;
/** 21 entries, complete, checkpoints every 5. */
let whole: Made;
/** Entries 5..14 of 31 with inclusion proofs and the anchor of entry 4. */
let range: Made;
/** Trace 0 (entries 1..5) of 21. */
let trace: Made;

beforeAll(async () => {
  whole = await makeBundle(20, { checkpointEvery: 5 });
  range = await makeBundle(30, { scope: { from: 5, to: 14 } });
  trace = await makeBundle(20, { scope: { traceId: traceIdOf(0) } });
});

const pin = (b: Made) => ({ trustedKey: b.vkey });
const verify = (m: MutableBundle, b: Made, opts: object = {}): VerifyReport =>
  verifyBundle(text(m), { ...pin(b), ...opts });
const slim = (r: VerifyReport, id: string) =>
  findingsOf(r, id).map((f) => ({ code: f.code, index: f.index, position: f.position }));

/** A checkpoint note over the first `size` leaves of `entries`, signed by the test ledger key. */
function checkpointOver(entries: MutableBundle[], size: number, origin = ORIGIN): string {
  const leaves = entries.slice(0, size).map((e) => entryLeafHash(e['entry_hash'] as string));
  return signNote(formatCheckpoint({ origin, size, rootHash: rootOf(leaves) }), testSigner());
}

describe('GEI audit chain: chain continuity', () => {
  it('entry 0 must link to 64 zeros: CHAIN_PREV_HASH at entry 0', () => {
    const m = mutable(whole.text);
    m['entries'][0].prev_hash = 'ab'.repeat(32);
    rechain(m['entries'], 0);
    expect(slim(verify(m, whole), 'chain-continuity')).toEqual([
      { code: 'CHAIN_PREV_HASH', index: 0, position: 0 },
    ]);
  });

  it('an entry whose prev_hash is not its predecessor’s hash (re-hashed itself): CHAIN_PREV_HASH at that entry', () => {
    const m = mutable(whole.text);
    m['entries'][9].prev_hash = 'ab'.repeat(32);
    rehash(m['entries'][9]);
    // Its new hash breaks the next link too.
    expect(slim(verify(m, whole), 'chain-continuity')).toEqual([
      { code: 'CHAIN_PREV_HASH', index: 9, position: 9 },
      { code: 'CHAIN_PREV_HASH', index: 10, position: 10 },
    ]);
  });

  it('a malformed entry breaks the chain after it without shifting the indices', () => {
    const m = mutable(whole.text);
    m['entries'][7] = { not: 'an entry' };
    const r = verify(m, whole);
    expect(slim(r, 'chain-continuity')).toEqual([{ code: 'CHAIN_ANCHOR_MISSING', index: 8, position: 8 }]);
    expect(slim(r, 'entry-format')).toEqual([{ code: 'ENTRY_MALFORMED', index: undefined, position: 7 }]);
    expect(slim(r, 'merkle-root').map((f) => f.code)).toEqual(['MERKLE_ROOT']);
  });

  it('cutting exactly the last entry of the scope names it (tail cut); the whole scope passes', () => {
    expect(findingsOf(verifyBundle(whole.text, pin(whole)), 'chain-continuity')).toEqual([]);
    const m = mutable(whole.text);
    m['entries'].pop();
    expect(slim(verify(m, whole), 'chain-continuity')).toEqual([
      { code: 'CHAIN_INDEX', index: 20, position: 20 },
    ]);
  });

  it('a range export with no entries at all reports no chain finding (the root check names it)', () => {
    const m = mutable(whole.text);
    m['entries'] = [];
    const r = verify(m, whole);
    expect(findingsOf(r, 'chain-continuity')).toEqual([]);
    expect(slim(r, 'merkle-root')).toEqual([{ code: 'ENTRIES_MISSING', index: 0, position: 0 }]);
  });

  it('a range export: its first entry links to the anchor; a wrong or malformed anchor is named', () => {
    expect(verifyBundle(range.text, pin(range)).exitCode).toBe(0);
    const wrong = mutable(range.text);
    wrong['anchors'][0].entry_hash = 'cd'.repeat(32);
    expect(slim(verify(wrong, range), 'chain-continuity')).toEqual([
      { code: 'CHAIN_PREV_HASH', index: 5, position: 0 },
    ]);
    for (const bad of [
      (a: MutableBundle) => void (a['entry_hash'] = (a['entry_hash'] as string).toUpperCase()),
      (a: MutableBundle) => void (a['index'] = String(a['index'])),
      (a: MutableBundle) => void (a['index'] = (a['index'] as number) + 0.5),
    ]) {
      const m = mutable(range.text);
      bad(m['anchors'][0]);
      expect(slim(verify(m, range), 'chain-continuity')).toEqual([
        { code: 'CHAIN_ANCHOR_MISSING', index: 5, position: 0 },
      ]);
    }
    // Junk next to the real anchor is ignored by the chain (the inclusion check names it).
    const junk = mutable(range.text);
    junk['anchors'] = [null, [1], 'x', ...junk['anchors']];
    const r = verify(junk, range);
    expect(findingsOf(r, 'chain-continuity')).toEqual([]);
    // Three junk anchors, one finding (findings naming no entry are reported once per message).
    expect(findingsOf(r, 'inclusion-proofs').map((f) => f.code)).toEqual(['INCLUSION_PROOF']);
  });

  it('a range export: a missing or repeated index is named against the expected one', () => {
    const gap = mutable(range.text);
    gap['entries'].splice(3, 1);
    // The entry after the gap is named twice: out of sequence, and its predecessor is neither present nor anchored.
    expect(slim(verify(gap, range), 'chain-continuity')).toEqual([
      { code: 'CHAIN_INDEX', index: 9, position: 3 },
      { code: 'CHAIN_ANCHOR_MISSING', index: 9, position: 3 },
    ]);
    const dup = mutable(range.text);
    dup['entries'].splice(3, 0, structuredClone(dup['entries'][2]));
    expect(slim(verify(dup, range), 'chain-continuity')[0]).toEqual({
      code: 'CHAIN_INDEX',
      index: 7,
      position: 3,
    });
  });

  it('a trace export: indices only ascend; a repeat or a swap is named', () => {
    expect(verifyBundle(trace.text, pin(trace)).exitCode).toBe(0);
    const swap = mutable(trace.text);
    const e = swap['entries'];
    [e[1], e[2]] = [e[2], e[1]];
    // Trace 0 is entries 1..5: [1, 3, 2, 4, 5].
    expect(slim(verify(swap, trace), 'chain-continuity')).toContainEqual({
      code: 'CHAIN_INDEX',
      index: 2,
      position: 2,
    });
    const dup = mutable(trace.text);
    dup['entries'].splice(2, 0, structuredClone(dup['entries'][1]));
    expect(slim(verify(dup, trace), 'chain-continuity')).toContainEqual({
      code: 'CHAIN_INDEX',
      index: 2,
      position: 2,
    });
  });

  it('the chain crosses the runs of a streamed (v2) bundle: a swap at a run boundary is named as in v1', () => {
    const m = mutable(whole.text);
    const e = m['entries'];
    [e[2], e[3]] = [e[3], e[2]];
    const v1 = verify(m, whole);
    const v2 = verifyBundle(`${v2Lines(m, 3).join('\n')}\n`, { ...pin(whole), ...TINY_LIMITS });
    expect(slim(v2, 'chain-continuity')).toEqual(slim(v1, 'chain-continuity'));
    expect(slim(v1, 'chain-continuity')[0]).toEqual({ code: 'CHAIN_INDEX', index: 3, position: 2 });
  });
});

describe('SPEC §4: the Merkle root of a complete export', () => {
  it('no verified checkpoint: CHECKPOINT_UNVERIFIED', () => {
    const m = mutable(whole.text);
    m['checkpoint'] = 'not a note';
    expect(slim(verify(m, whole), 'merkle-root').map((f) => f.code)).toEqual(['CHECKPOINT_UNVERIFIED']);
  });

  it('more entries than the checkpoint covers: MERKLE_ROOT at the first uncovered position', () => {
    const m = mutable(whole.text);
    const extra = structuredClone(m['entries'].at(-1));
    extra.index = m['entries'].length;
    m['entries'].push(extra);
    rechain(m['entries'], m['entries'].length - 1);
    m['scope'].to = extra.index;
    expect(slim(verify(m, whole), 'merkle-root')).toEqual([
      { code: 'MERKLE_ROOT', index: undefined, position: 21 },
    ]);
  });

  it('fewer entries than the checkpoint covers: ENTRIES_MISSING names the first missing one', () => {
    const m = mutable(whole.text);
    m['entries'].splice(19);
    m['scope'].to = 18;
    expect(slim(verify(m, whole), 'merkle-root')).toEqual([
      { code: 'ENTRIES_MISSING', index: 19, position: 19 },
    ]);
  });

  it('an edited, re-hashed entry changes the root: MERKLE_ROOT naming no entry', () => {
    const m = mutable(whole.text);
    m['entries'][20].at = '2030-01-01T00:00:00.000Z';
    rehash(m['entries'][20]);
    expect(slim(verify(m, whole), 'merkle-root')).toEqual([
      { code: 'MERKLE_ROOT', index: undefined, position: undefined },
    ]);
  });
});

describe('SPEC §4: inclusion proofs of a partial export', () => {
  it('no verified checkpoint: CHECKPOINT_UNVERIFIED', () => {
    const m = mutable(range.text);
    m['checkpoint'] = 'not a note';
    expect(slim(verify(m, range), 'inclusion-proofs').map((f) => f.code)).toEqual(['CHECKPOINT_UNVERIFIED']);
  });

  it('a missing, malformed or foreign proof names its entry; other proofs still count', () => {
    for (const edit of [
      (p: MutableBundle[]) => void p.splice(2, 1),
      (p: MutableBundle[]) => void (p[2]!['hashes'] = 'none'),
      (p: MutableBundle[]) => void (p[2]!['hashes'] = [...(p[2]!['hashes'] as string[]), 'zz']),
      (p: MutableBundle[]) => void (p[2]!['index'] = String(p[2]!['index'])),
      (p: MutableBundle[]) => void (p[2] = p[3]!),
    ]) {
      const m = mutable(range.text);
      const proofs = m['proofs'].inclusion as MutableBundle[];
      const named = proofs[2]!['index'] as number;
      edit(proofs);
      proofs.unshift(null as never, [] as never);
      const r = verify(m, range);
      expect(slim(r, 'inclusion-proofs')).toContainEqual({
        code: 'INCLUSION_PROOF',
        index: named,
        position: named - 5,
      });
      expect(findingsOf(r, 'inclusion-proofs').filter((f) => f.index !== named)).toEqual([]);
    }
  });

  it('a malformed second proof of an entry does not undo its valid first proof', () => {
    const m = mutable(range.text);
    const proofs = m['proofs'].inclusion as MutableBundle[];
    proofs.push({ index: proofs[2]!['index'], hashes: 'none' });
    expect(verify(m, range).exitCode).toBe(0);
  });

  it('an anchor without a proof names its index; a malformed anchor names none', () => {
    const m = mutable(range.text);
    m['anchors'].push({ index: 2, entry_hash: 'ab'.repeat(32) }, { index: 'x', entry_hash: 'ab'.repeat(32) });
    expect(slim(verify(m, range), 'inclusion-proofs')).toEqual([
      { code: 'INCLUSION_PROOF', index: 2, position: undefined },
      { code: 'INCLUSION_PROOF', index: undefined, position: undefined },
    ]);
  });

  it('a complete export that carries inclusion proofs is judged by them (and they must hold)', () => {
    const m = mutable(whole.text);
    m['proofs'] = { inclusion: [{ index: 0, hashes: [] }] };
    const r = verify(m, whole);
    expect(r.checks.find((c) => c.id === 'inclusion-proofs')?.status).toBe('fail');
    expect(findingsOf(r, 'inclusion-proofs')[0]).toMatchObject({ code: 'INCLUSION_PROOF', index: 0 });
  });
});

describe('SPEC §4 / L7 ledger protection: consistency between checkpoints (rollback, split view)', () => {
  const consistency = (r: VerifyReport) => slim(r, 'consistency');

  it('older checkpoints are proven prefixes; each bad one is named', () => {
    expect(verifyBundle(whole.text, pin(whole)).exitCode).toBe(0);
    const entries = mutable(whole.text)['entries'] as MutableBundle[];
    for (const bad of [
      (o: MutableBundle[]) => void (o[0] = null as never),
      (o: MutableBundle[]) => void (o[0]!['note'] = 42),
      (o: MutableBundle[]) => void (o[0]!['note'] = checkpointOver(entries, 5, 'other.origin/x')),
      (o: MutableBundle[]) => void (o[0]!['consistency'] = 'none'),
      (o: MutableBundle[]) => void (o[0]!['consistency'] = ['ab'.repeat(32)]),
    ]) {
      const m = mutable(whole.text);
      bad(m['older_checkpoints']);
      expect(consistency(verify(m, whole)).map((f) => f.code)).toEqual(['CONSISTENCY']);
    }
  });

  it('no verified checkpoint: CHECKPOINT_UNVERIFIED; nothing to compare: the check is skipped', async () => {
    const m = mutable(whole.text);
    m['checkpoint'] = 'not a note';
    expect(consistency(verify(m, whole)).map((f) => f.code)).toEqual(['CHECKPOINT_UNVERIFIED']);
    const plain = await makeBundle(3);
    expect(verifyBundle(plain.text, pin(plain)).checks.find((c) => c.id === 'consistency')?.status).toBe(
      'skip',
    );
  });

  it('--since: an equal checkpoint passes, a same-size different root is a fork, a larger one a rollback', () => {
    const entries = mutable(whole.text)['entries'] as MutableBundle[];
    const size = entries.length;
    expect(verifyBundle(whole.text, { ...pin(whole), since: checkpointOver(entries, size) }).exitCode).toBe(
      0,
    );
    expect(verifyBundle(whole.text, { ...pin(whole), since: checkpointOver(entries, 0) }).exitCode).toBe(0);
    const forked = entries.map((e) => ({
      ...e,
      entry_hash: e === entries[size - 1] ? 'ab'.repeat(32) : e['entry_hash'],
    }));
    expect(
      consistency(verifyBundle(whole.text, { ...pin(whole), since: checkpointOver(forked, size) })),
    ).toEqual([{ code: 'FORK', index: undefined, position: undefined }]);
    const longer = [...entries, { entry_hash: 'ab'.repeat(32) }];
    expect(
      consistency(verifyBundle(whole.text, { ...pin(whole), since: checkpointOver(longer, size + 1) })).map(
        (f) => f.code,
      ),
    ).toEqual(['ROLLBACK']);
  });

  it('--since alone makes the check apply, even without older checkpoints in the bundle', async () => {
    const plain = await makeBundle(3);
    const entries = mutable(plain.text)['entries'] as MutableBundle[];
    const longer = [...entries, { entry_hash: 'ab'.repeat(32) }];
    const r = verifyBundle(plain.text, { ...pin(plain), since: checkpointOver(longer, entries.length + 1) });
    expect(consistency(r).map((f) => f.code)).toEqual(['ROLLBACK']);
  });

  it('--since the size of a complete export cut short: its entries are still compared directly', () => {
    const m = mutable(whole.text);
    const entries = m['entries'] as MutableBundle[];
    const since = checkpointOver(entries, 19);
    entries.splice(19);
    expect(consistency(verify(m, whole, { since }))).toEqual([]);
  });

  it('--since under another key or origin: CONSISTENCY', () => {
    const entries = mutable(whole.text)['entries'] as MutableBundle[];
    const foreign = signNote(
      formatCheckpoint({
        origin: ORIGIN,
        size: 5,
        rootHash: rootOf(entries.slice(0, 5).map((e) => entryLeafHash(e['entry_hash'] as string))),
      }),
      testSigner(9),
    );
    expect(
      consistency(verifyBundle(whole.text, { ...pin(whole), since: foreign })).map((f) => f.code),
    ).toEqual(['CONSISTENCY']);
    expect(
      consistency(
        verifyBundle(whole.text, { ...pin(whole), since: checkpointOver(entries, 5, 'other.origin/x') }),
      ).map((f) => f.code),
    ).toEqual(['CONSISTENCY']);
  });

  it('--since on a complete export: the first entries must be the ones signed, else a fork naming the last of them', () => {
    const entries = mutable(whole.text)['entries'] as MutableBundle[];
    expect(verifyBundle(whole.text, { ...pin(whole), since: checkpointOver(entries, 7) }).exitCode).toBe(0);
    const other = entries.map((e, i) => (i === 3 ? { entry_hash: 'ab'.repeat(32) } : e));
    expect(consistency(verifyBundle(whole.text, { ...pin(whole), since: checkpointOver(other, 7) }))).toEqual(
      [{ code: 'FORK', index: 6, position: undefined }],
    );
  });

  it('--since on a partial export: proven through an older checkpoint of that size, else a fork or no proof', async () => {
    const full = await makeBundle(30, { checkpointEvery: 10 });
    const part = await makeBundle(30, { checkpointEvery: 10, scope: { from: 25 } });
    const entries = mutable(full.text)['entries'] as MutableBundle[];
    const since = (m: MutableBundle[], size: number) =>
      verifyBundle(part.text, { ...pin(part), since: checkpointOver(m, size) });
    expect(since(entries, 10).exitCode).toBe(0);
    const other = entries.map((e, i) => (i === 3 ? { entry_hash: 'ab'.repeat(32) } : e));
    expect(consistency(since(other, 10))).toEqual([{ code: 'FORK', index: undefined, position: undefined }]);
    expect(consistency(since(entries, 15)).map((f) => f.code)).toEqual(['CONSISTENCY']);
    // An older checkpoint of the trusted size whose own proof fails proves nothing: a fork.
    const broken = mutable(part.text);
    const older = (broken['older_checkpoints'] as MutableBundle[]).find((o) =>
      (o['note'] as string).includes('\n10\n'),
    )!;
    older['consistency'] = ['ab'.repeat(32)];
    expect(
      consistency(verifyBundle(text(broken), { ...pin(part), since: checkpointOver(entries, 10) })).map(
        (f) => f.code,
      ),
    ).toEqual(['CONSISTENCY', 'FORK']);
  });
});
