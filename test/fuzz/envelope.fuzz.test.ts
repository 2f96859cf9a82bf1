/**
 * Fuzz target `envelope`: any byte change to a valid compact envelope is denied, never allowed
 * (SPEC §3 verification order: well-formed JWS, header, signature over header and payload;
 * FC-INV-4: what the Execution Layer cannot interpret ends in a deny).
 *
 * An edit is one byte of the envelope's latin1 string replaced by another value, one byte
 * inserted, or one byte deleted. `npm test` runs a fixed-seed fast-check sample and every byte
 * value at the segment boundaries (well under 2 s). `npm run fuzz` (FC_FUZZ=full) runs every
 * position × every byte value × {replace, insert}, every deletion, and a fresh-seed sample of
 * multi-byte edits.
 *
 * The verifier caches validated header segments, so every case runs with the valid header in
 * the cache: an edited header must be parsed again, never served from the valid entry, and the
 * original envelope must still verify after the edits (the cache holds nothing an edit put
 * there under the valid segment).
 *
 * Regressions: `test/fuzz/regressions/*.json` files with `"target": "envelope"` are replayed on
 * every `npm test`: `{ "target": "envelope", "seed": <fast-check seed>,
 * "edits": [{ "op": "replace" | "insert" | "delete", "position": n, "byte": 0-255 }] }`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { verifyEnvelope } from '../../src/kernel/index.js';
import { signEnvelope } from '../../src/kernel/signing/index.js';
import { baseClaims, baseContext, TEST_KEY, toVerifyContext } from '../fixtures/envelope-reject/generate.js';
import { REPO_ROOT } from '../support/paths.js';
import { FULL, fuzzRuns, fuzzSeed } from './budget.js';

const TOKEN = signEnvelope(baseClaims(), TEST_KEY);
const BYTES = Buffer.from(TOKEN, 'latin1');
const CTX = toVerifyContext(baseContext());
const FIRST_DOT = TOKEN.indexOf('.');
const SECOND_DOT = TOKEN.indexOf('.', FIRST_DOT + 1);

type Op = 'replace' | 'insert' | 'delete';
interface Edit {
  readonly op: Op;
  /** Byte index in the string being edited (for insert: the index the new byte takes). */
  readonly position: number;
  /** The new byte value (ignored for delete). */
  readonly byte: number;
}

function applyEdit(bytes: Buffer, e: Edit): Buffer {
  const at = Math.min(e.position, e.op === 'insert' ? bytes.length : bytes.length - 1);
  if (e.op === 'delete') return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
  const rest = bytes.subarray(e.op === 'insert' ? at : at + 1);
  return Buffer.concat([bytes.subarray(0, at), Buffer.from([e.byte]), rest]);
}

/** The verifier's outcome for an edited envelope string: a denial code, or 'ALLOWED'. */
function outcomeOf(token: string): string {
  const r = verifyEnvelope(token, CTX);
  return r.outcome === 'deny' ? r.code : 'ALLOWED';
}

/** Runs the valid envelope once: it must verify, and its header is now in the cache. */
function warmValidHeader(): void {
  expect(outcomeOf(TOKEN)).toBe('ALLOWED');
}

/** Every edit at `position` (every replacement value, every insertion value, the deletion). */
function allEditsAt(position: number): Edit[] {
  const edits: Edit[] = [];
  for (let byte = 0; byte < 256; byte++) {
    if (position < BYTES.length && byte !== BYTES[position]) edits.push({ op: 'replace', position, byte });
    edits.push({ op: 'insert', position, byte });
  }
  if (position < BYTES.length) edits.push({ op: 'delete', position, byte: 0 });
  return edits;
}

/** Runs every edit at `positions`: how many ran, and those not denied with an envelope code. */
function runEdits(positions: readonly number[]): { count: number; allowed: Edit[] } {
  const allowed: Edit[] = [];
  let count = 0;
  for (const position of positions) {
    warmValidHeader();
    for (const e of allEditsAt(position)) {
      count++;
      const code = outcomeOf(applyEdit(BYTES, e).toString('latin1'));
      if (!code.startsWith('ERR_ENVELOPE_')) allowed.push(e);
    }
  }
  warmValidHeader();
  return { count, allowed };
}

/** fast-check parameters; under `npm run fuzz` the fresh seed is printed for replay (FC_FUZZ_SEED). */
function runParameters(
  name: string,
  inTests: number,
  full: number,
  fixedSeed: number,
): { numRuns: number; seed: number } {
  const seed = fuzzSeed(fixedSeed);
  if (FULL) process.stdout.write(`envelope fuzz ${name}: seed ${seed}\n`);
  return { numRuns: fuzzRuns(inTests, full), seed };
}

/** Full runs take minutes on a loaded machine; `npm test` keeps the default timeout. */
const TIMEOUT = FULL ? 30 * 60_000 : undefined;

const editArb = (length: number): fc.Arbitrary<Edit> =>
  fc.record({
    op: fc.constantFrom<Op>('replace', 'insert', 'delete'),
    position: fc.nat({ max: length }),
    byte: fc.nat({ max: 255 }),
  });

describe('envelope fuzz: any byte change is denied (SPEC §3, FC-INV-4)', () => {
  it('the unedited envelope verifies (guards every property below)', () => {
    warmValidHeader();
  });

  it(
    'one random byte replaced, inserted or deleted is denied with an envelope code',
    () => {
      fc.assert(
        fc.property(editArb(BYTES.length), (e) => {
          const edited = applyEdit(BYTES, e);
          fc.pre(!edited.equals(BYTES));
          warmValidHeader();
          expect(outcomeOf(edited.toString('latin1'))).toMatch(/^ERR_ENVELOPE_/);
        }),
        runParameters('one edit', 200, 20_000, 130_013),
      );
      warmValidHeader();
    },
    TIMEOUT,
  );

  it(
    'several random byte edits together are denied',
    () => {
      fc.assert(
        fc.property(fc.array(editArb(BYTES.length + 4), { minLength: 2, maxLength: 6 }), (edits) => {
          const edited = edits.reduce(applyEdit, BYTES);
          fc.pre(!edited.equals(BYTES));
          warmValidHeader();
          expect(outcomeOf(edited.toString('latin1'))).toMatch(/^ERR_ENVELOPE_/);
        }),
        runParameters('several edits', 60, 20_000, 130_014),
      );
      warmValidHeader();
    },
    TIMEOUT,
  );

  it('every byte value replaced, inserted or deleted at the segment boundaries is denied', () => {
    const boundaries = [0, 1, FIRST_DOT - 1, FIRST_DOT, FIRST_DOT + 1, SECOND_DOT - 1, SECOND_DOT];
    expect(runEdits([...boundaries, SECOND_DOT + 1, BYTES.length - 1, BYTES.length]).allowed).toEqual([]);
  });

  it.runIf(FULL)(
    'exhaustive: every position × every byte value, and every deletion, is denied',
    () => {
      const positions = Array.from({ length: BYTES.length + 1 }, (_, i) => i);
      const started = performance.now();
      const { count, allowed } = runEdits(positions);
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      process.stdout.write(
        `envelope fuzz exhaustive: ${BYTES.length} bytes, ${count} edits in ${seconds} s\n`,
      );
      expect(allowed).toEqual([]);
    },
    TIMEOUT,
  );

  it('replays the recorded regressions (test/fuzz/regressions, target "envelope")', () => {
    const dir = join(REPO_ROOT, 'test/fuzz/regressions');
    const cases = readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map(
        (f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as { target?: string; edits?: Edit[] } | null,
      )
      .filter((c) => c?.target === 'envelope');
    for (const c of cases) {
      const edited = (c?.edits ?? []).reduce(applyEdit, BYTES);
      if (edited.equals(BYTES)) continue;
      warmValidHeader();
      expect(outcomeOf(edited.toString('latin1'))).toMatch(/^ERR_ENVELOPE_/);
    }
  });
});
