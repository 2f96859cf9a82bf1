/**
 * Fuzzing the offline verifier with edits of an exported audit bundle (SPEC §4 "any edit,
 * deletion, insertion, reordering or truncation is detectable"; SPEC §7 scenario 12 "Ledger
 * tampering … → verify fails and names the entry"; OE-INV-016, L7 ledger protection).
 *
 * The bundle is a real streamed export (v2 JSON Lines) of a linkage-complete ledger (registration,
 * three whole calls, the export record), verified with its ledger key pinned. An *edit* is one of:
 * - `value`: one field of one entry (any member at any depth: index, hashes, type, time, ids,
 *   actor, any payload value) gets a different JSON value;
 * - `delete`, `duplicate`, `swap`: entry lines are deleted, duplicated (anywhere) or swapped;
 *   with `fixCount` the attacker also rewrites the end record's entry count;
 * - `flip`: one byte of an entry line is XORed with a non-zero byte.
 * A byte change that leaves the line's parsed JSON identical (e.g. whitespace) is semantically
 * no edit and is not generated (`fc.pre`); neither is a swap of two identical lines.
 *
 * Property: every edit fails verification. An edit that keeps every line JSON and the end count
 * right exits 1 with a finding that names the edited entry: its bundle position (for a deletion,
 * the position it held, now its successor's, or the tail cut) or its ledger index (for a value
 * edit of `index`, the original or the new one). An edit that breaks a line's JSON or the end
 * count makes the bundle unusable: exit 2, fail closed (the record number is in the message
 * only). Non-entry lines (header, evidence, policy bundles, end) are out of scope here.
 *
 * `npm test` runs a small fixed-seed sample; `npm run fuzz` (FC_FUZZ=full) a large one with a
 * fresh seed. A failing case printed by fast-check goes to test/fuzz/regressions/ as
 * `bundle-*.json` `{ "target": "bundle", "edit": … }` and is replayed on every run.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { exportBundleStream } from '../../src/ledger/index.js';
import { verifyBundle, type VerifyReport } from '../../src/verify/index.js';
import { AUDITOR, openLedger, tempSqliteStore } from '../ledger/fixtures.js';
import { appendRealistic, LINKAGE_EXPORT } from '../verify/realistic.js';
import { FULL, fuzzRuns, fuzzSeed } from './budget.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Edit =
  | { kind: 'value'; entry: number; path: (string | number)[]; value: Json }
  | { kind: 'delete'; entry: number; fixCount: boolean }
  | { kind: 'duplicate'; entry: number; to: number; fixCount: boolean }
  | { kind: 'swap'; a: number; b: number }
  | { kind: 'flip'; entry: number; offset: number; xor: number };

let lines: string[];
/** Line number of each entry record, in order. */
let entryLines: number[];
let vkey: string;

beforeAll(async () => {
  const t = tempSqliteStore();
  try {
    const ledger = await openLedger(t.store);
    await appendRealistic(ledger, 16);
    const s = await exportBundleStream({ ledger, actor: AUDITOR, ...LINKAGE_EXPORT, chunkEntries: 5 });
    let text = '';
    for await (const l of s.lines) text += l;
    vkey = ledger.ledgerKey.vkey;
    await ledger.close();
    lines = text.trimEnd().split('\n');
    entryLines = lines.flatMap((l, i) =>
      (JSON.parse(l) as { record: string }).record === 'entry' ? [i] : [],
    );
  } finally {
    t.cleanup();
  }
});

const entryOf = (line: string): { [k: string]: Json } =>
  (JSON.parse(line) as { entry: { [k: string]: Json } }).entry;

/** Every path to a member of `v` (objects and arrays included, not the root). */
function paths(v: Json, at: (string | number)[] = []): (string | number)[][] {
  if (v === null || typeof v !== 'object') return [];
  const keys: (string | number)[] = Array.isArray(v) ? v.map((_x, i) => i) : Object.keys(v);
  return keys.flatMap((k) => {
    const p = [...at, k];
    return [p, ...paths((v as Record<string | number, Json>)[k]!, p)];
  });
}

function getAt(v: Json, path: readonly (string | number)[]): Json {
  return path.reduce<Json>((o, k) => (o as Record<string | number, Json>)[k]!, v);
}

function setAt(v: Json, path: readonly (string | number)[], value: Json): void {
  const parent = getAt(v, path.slice(0, -1)) as Record<string | number, Json>;
  parent[path[path.length - 1]!] = value;
}

/** The edited bundle bytes, or undefined when the edit is semantically none. */
function apply(edit: Edit): Buffer | undefined {
  const out = [...lines];
  const fixEnd = (n: number): void => {
    out[out.length - 1] = JSON.stringify({ record: 'end', entries: n });
  };
  switch (edit.kind) {
    case 'value': {
      const line = out[entryLines[edit.entry]!]!;
      const rec = JSON.parse(line) as { entry: Json };
      if (isDeepStrictEqual(getAt(rec.entry, edit.path), edit.value)) return undefined;
      setAt(rec.entry, edit.path, edit.value);
      out[entryLines[edit.entry]!] = JSON.stringify(rec);
      break;
    }
    case 'delete':
      out.splice(entryLines[edit.entry]!, 1);
      if (edit.fixCount) fixEnd(entryLines.length - 1);
      break;
    case 'duplicate': {
      const copy = out[entryLines[edit.entry]!]!;
      // Inserted before the entry line now at `to` (after the last one when `to` is past the end).
      const at = edit.to < entryLines.length ? entryLines[edit.to]! : entryLines[entryLines.length - 1]! + 1;
      out.splice(at, 0, copy);
      if (edit.fixCount) fixEnd(entryLines.length + 1);
      break;
    }
    case 'swap': {
      const [a, b] = [entryLines[edit.a]!, entryLines[edit.b]!];
      if (out[a] === out[b]) return undefined;
      [out[a], out[b]] = [out[b]!, out[a]!];
      break;
    }
    case 'flip': {
      const i = entryLines[edit.entry]!;
      const bytes = Buffer.from(out[i]!, 'utf8');
      bytes[edit.offset % bytes.length]! ^= edit.xor;
      const edited = bytes.toString('latin1');
      let same = false;
      try {
        same = isDeepStrictEqual(JSON.parse(bytes.toString('utf8')), JSON.parse(out[i]!));
      } catch {
        same = false;
      }
      if (same) return undefined;
      // Keep the exact bytes (a flip may leave invalid UTF-8).
      return Buffer.concat(
        out.map((l, j) => (j === i ? Buffer.from(`${edited}\n`, 'latin1') : Buffer.from(`${l}\n`, 'utf8'))),
      );
    }
  }
  return Buffer.from(`${out.join('\n')}\n`, 'utf8');
}

/** Positions and ledger indices a finding may use to name the edited entry. */
function named(edit: Edit): { positions: number[]; indices: number[] } {
  switch (edit.kind) {
    case 'value': {
      const e = entryOf(lines[entryLines[edit.entry]!]!);
      const extra = edit.path.length === 1 && edit.path[0] === 'index' ? [edit.value as number] : [];
      return { positions: [edit.entry], indices: [e['index'] as number, ...extra] };
    }
    case 'delete':
      return { positions: [edit.entry], indices: [edit.entry] };
    case 'duplicate': {
      const to = Math.min(edit.to, entryLines.length);
      return { positions: [to], indices: [edit.entry] };
    }
    case 'swap':
      return { positions: [edit.a, edit.b], indices: [edit.a, edit.b] };
    case 'flip':
      return { positions: [edit.entry], indices: [edit.entry] };
  }
}

function findings(r: VerifyReport) {
  return r.checks.flatMap((c) => [...c.findings, ...(c.undecided ?? [])]);
}

/** Checks one edit; returns false when it was semantically none (not counted). */
function check(edit: Edit): boolean {
  const bytes = apply(edit);
  if (bytes === undefined) return false;
  const r = verifyBundle(bytes, { trustedKey: vkey });
  const structural = (edit.kind === 'delete' || edit.kind === 'duplicate') && !edit.fixCount;
  if (structural) {
    expect(r.exitCode).toBe(2);
    return true;
  }
  if (r.exitCode === 2) {
    // Only a line that no longer parses as a JSON object record may make the bundle unusable.
    expect(edit.kind === 'flip' || edit.kind === 'value').toBe(true);
    return true;
  }
  expect(r.exitCode).toBe(1);
  const { positions, indices } = named(edit);
  const hit = findings(r).some(
    (f) =>
      (f.position !== undefined && positions.includes(f.position)) ||
      (f.index !== undefined && indices.includes(f.index)),
  );
  if (!hit) throw new Error(`no finding names the edited entry: ${JSON.stringify(findings(r))}`);
  return true;
}

const json: fc.Arbitrary<Json> = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.integer({ min: -2, max: 40 }),
  fc.boolean(),
  fc.constant(null),
  fc.constant({}),
  fc.constant<Json>([]),
  fc.constant('0'.repeat(64)),
);

function edits(): fc.Arbitrary<Edit> {
  const n = entryLines.length;
  const entry = fc.integer({ min: 0, max: n - 1 });
  const value = entry.chain((k) => {
    const ps = paths(entryOf(lines[entryLines[k]!]!));
    return fc.record({
      kind: fc.constant('value' as const),
      entry: fc.constant(k),
      path: fc.constantFrom(...ps),
      value: json,
    });
  });
  return fc.oneof(
    { arbitrary: value, weight: 4 },
    {
      arbitrary: fc.record({ kind: fc.constant('delete' as const), entry, fixCount: fc.boolean() }),
      weight: 1,
    },
    {
      arbitrary: fc.record({
        kind: fc.constant('duplicate' as const),
        entry,
        to: fc.integer({ min: 0, max: n }),
        fixCount: fc.boolean(),
      }),
      weight: 1,
    },
    {
      arbitrary: fc
        .tuple(entry, entry)
        .filter(([a, b]) => a < b)
        .map(([a, b]) => ({ kind: 'swap' as const, a, b })),
      weight: 1,
    },
    {
      arbitrary: fc.record({
        kind: fc.constant('flip' as const),
        entry,
        offset: fc.nat(),
        xor: fc.integer({ min: 1, max: 255 }),
      }),
      weight: 3,
    },
  );
}

describe('SPEC §7 scenario 12 / SPEC §4: any edit of an exported bundle fails verify and names the entry', () => {
  it('the unedited export verifies', () => {
    expect(verifyBundle(`${lines.join('\n')}\n`, { trustedKey: vkey }).exitCode).toBe(0);
    expect(entryLines.length).toBe(17);
  });

  it(
    'every generated edit is detected',
    () => {
      fc.assert(
        fc.property(edits(), (edit) => {
          fc.pre(check(edit));
        }),
        { numRuns: fuzzRuns(60, 5_000), seed: fuzzSeed(1313), endOnFailure: true },
      );
    },
    FULL ? 1_800_000 : undefined,
  );

  it('recorded regressions still fail verification', () => {
    const dir = join(import.meta.dirname, 'regressions');
    for (const f of readdirSync(dir).filter((n) => n.startsWith('bundle-') && n.endsWith('.json'))) {
      const r = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { target: string; edit: Edit };
      expect(r.target).toBe('bundle');
      check(r.edit);
    }
  });
});
