/**
 * Fuzzing the strict JSON parser (SPEC §3 "payload bytes are exactly the canonical encoding …
 * rejects duplicate keys and alternate spellings", SPEC §7 scenario 10, SPEC §8 JSON numbers).
 *
 * 1. Grammar: documents built from the RFC 8259 grammar (whitespace, escapes, number spellings,
 *    nesting) that know their verdict by construction: accepted, or denied with the code of the
 *    first planted fault in parsing order (duplicate member name, unsafe number, unpaired
 *    surrogate, nesting deeper than `maxDepth`). An accepted document must equal JSON.parse.
 * 2. Mutation: generated documents and the JSONTestSuite corpus with bytes or UTF-16 code units
 *    inserted, deleted or replaced, against a differential oracle: JSON.parse decides the grammar
 *    and a token scanner of the (then valid) text decides the strict policy, so the verdict is
 *    known exactly: not UTF-8 → ERR_JSON_INVALID_UTF8; JSON.parse rejects → a denial; otherwise
 *    accept exactly when no policy is violated, with a value deep-equal to JSON.parse's.
 * 3. Regressions: every `regressions/*.json` naming this file is replayed through the oracle.
 *
 * `npm test` runs 1500 fixed-seed cases (a second or two); `npm run fuzz` (FC_FUZZ=full) runs more than
 * 10^6 with a fresh seed, printed so a failure can be replayed with FC_FUZZ_SEED.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseJson } from '../../src/kernel/json.js';
import type { JsonLimits } from '../../src/kernel/json.js';
import type { DenialCode } from '../../src/kernel/errors.js';
import { JSON_TEST_SUITE_PARSING_DIR, jsonParseOracle, outcome } from '../support/json-outcome.js';
import type { Outcome } from '../support/json-outcome.js';
import { FULL, fuzzRuns, fuzzSeed } from './budget.js';

const THIS_FILE = basename(fileURLToPath(import.meta.url));
const REGRESSIONS_DIR = join(fileURLToPath(new URL('.', import.meta.url)), 'regressions');
const TIMEOUT = FULL ? 4 * 60 * 60_000 : 60_000;
const MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** String.prototype.isWellFormed (Node 20; the TypeScript lib here predates ES2024). */
const wellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

/** Runs `fc.assert` with this file's budget; in a full run prints the seed first. */
function run<T>(name: string, property: fc.IProperty<T>, inTests: number, full: number, seed: number): void {
  const numRuns = fuzzRuns(inTests, full);
  const chosen = fuzzSeed(seed);
  if (FULL) console.log(`json fuzz "${name}": ${numRuns} runs, seed ${chosen} (FC_FUZZ_SEED=${chosen})`);
  fc.assert(property, { numRuns, seed: chosen });
}

// ---- 1. documents from the grammar, with their verdict by construction ----------------------

/** A fault the parser must report, at `at`: the offset of the token where it detects it. */
interface Fault {
  readonly code: DenialCode;
  readonly at: number;
}

/** A rendered JSON text, its value, and what a strict parse of it must find. */
interface Doc {
  readonly text: string;
  readonly value: unknown;
  /** The first planted fault in parsing order, if any. */
  readonly fault: Fault | undefined;
  /** `opens[d]`: offset of the first container opened at nesting level d+1 (text order). */
  readonly opens: readonly number[];
  /** Key for duplicate detection when this doc is a member name (its string value). */
  readonly key?: string;
}

const first = (a: Fault | undefined, b: Fault | undefined): Fault | undefined =>
  a === undefined ? b : b === undefined ? a : a.at <= b.at ? a : b;
const shifted = (f: Fault | undefined, by: number): Fault | undefined =>
  f === undefined ? undefined : { code: f.code, at: f.at + by };

/** JSON whitespace: only the four characters of RFC 8259 §2. */
const wsArb = fc.oneof(
  { arbitrary: fc.constant(''), weight: 6 },
  {
    arbitrary: fc.string({ unit: fc.constantFrom(' ', '\t', '\n', '\r'), minLength: 1, maxLength: 3 }),
    weight: 1,
  },
);
const wsListArb = fc.array(wsArb, { minLength: 1, maxLength: 6 });

const SHORT_ESCAPES: Readonly<Record<string, string>> = {
  '"': '\\"',
  '\\': '\\\\',
  '/': '\\/',
  '\b': '\\b',
  '\f': '\\f',
  '\n': '\\n',
  '\r': '\\r',
  '\t': '\\t',
};

/** `\uXXXX` for one code unit, in lower, upper or mixed case hex. */
function uEscape(unit: number, style: number): string {
  const hex = unit.toString(16).padStart(4, '0');
  if (style % 3 === 0) return '\\u' + hex;
  if (style % 3 === 1) return '\\u' + hex.toUpperCase();
  return '\\u' + hex[0]!.toUpperCase() + hex[1] + hex[2]!.toUpperCase() + hex[3];
}

/** Spells the contents of a string (no quotes), each character raw or escaped as `choices` say. */
function spell(s: string, choices: readonly number[]): string {
  let out = '';
  let k = 0;
  for (const ch of s) {
    const choice = choices[k++ % choices.length]!;
    if (ch.length === 2) {
      out +=
        choice % 2 === 0 ? ch : uEscape(ch.charCodeAt(0), choice) + uEscape(ch.charCodeAt(1), choice >> 1);
      continue;
    }
    const unit = ch.charCodeAt(0);
    const mustEscape = unit < 0x20 || ch === '"' || ch === '\\';
    const short = SHORT_ESCAPES[ch];
    if (choice % 4 === 0 && !mustEscape) out += ch;
    else if (choice % 4 === 1 && short !== undefined) out += short;
    else if (choice % 4 === 2 || mustEscape || short !== undefined) out += uEscape(unit, choice >> 2);
    else out += ch;
  }
  return out;
}

/** Characters that matter to the string grammar, and any code point. */
const charArb = fc.oneof(
  fc.constantFrom(
    '"',
    '\\',
    '/',
    '\b',
    '\f',
    '\n',
    '\r',
    '\t',
    '\u0000',
    '\u001f',
    ' ',
    '\u007f',
    'é',
    '\u2028',
    '\ud7ff',
    '\ue000',
    '\ufeff',
    '\uffff',
    '😂',
    '\u{10000}',
    '\u{10ffff}',
    'u',
    'a',
  ),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
);
const stringValueArb = fc.oneof(
  { arbitrary: fc.string({ unit: charArb, maxLength: 5 }), weight: 6 },
  { arbitrary: fc.constantFrom('', '__proto__', 'constructor', 'toString', 'a', 'A'), weight: 1 },
);
const choicesArb = fc.array(fc.nat(15), { minLength: 1, maxLength: 8 });

/** A well-formed string, spelled one of many ways. */
const goodStringArb: fc.Arbitrary<Doc> = fc.tuple(stringValueArb, choicesArb).map(([value, choices]) => ({
  text: '"' + spell(value, choices) + '"',
  value,
  fault: undefined,
  opens: [],
  key: value,
}));

/** An unpaired surrogate, escaped or raw, between two well-formed spelled parts. */
const loneSurrogateArb: fc.Arbitrary<Doc> = fc
  .tuple(
    stringValueArb,
    stringValueArb,
    choicesArb,
    fc.integer({ min: 0xd800, max: 0xdbff }),
    fc.integer({ min: 0xdc00, max: 0xdfff }),
    fc.nat(9),
    fc.nat(5),
  )
  .map(([before, after, choices, high, low, form, style]) => {
    const lone = [
      uEscape(high, style), // escaped high, then no escaped low
      uEscape(low, style), // escaped low alone
      uEscape(low, style) + uEscape(high, style), // reversed pair
      uEscape(high, style) + uEscape(high, style >> 1), // two highs
      uEscape(high, style) + String.fromCharCode(low), // escaped high, raw low
      String.fromCharCode(high) + uEscape(low, style), // raw high, escaped low
      String.fromCharCode(high), // raw high alone
      String.fromCharCode(low), // raw low alone
      String.fromCharCode(low, high), // raw reversed
      uEscape(high, style) + '\\n' + uEscape(low, style), // an escape between the halves
    ][form]!;
    return {
      text: '"' + spell(before, choices) + lone + spell(after, choices) + '"',
      value: undefined,
      fault: { code: 'ERR_JSON_LONE_SURROGATE' as const, at: 0 },
      opens: [],
    };
  });

const leaf = (text: string, value: unknown): Doc => ({ text, value, fault: undefined, opens: [] });
const unsafe = (text: string): Doc => ({
  text,
  value: undefined,
  fault: { code: 'ERR_JSON_UNSAFE_NUMBER', at: 0 },
  opens: [],
});
const withE = (text: string, upper: boolean): string => (upper ? text.replace('e', 'E') : text);

/** Safe integers in every spelling whose exact decimal value is the integer. */
const safeIntegerArb: fc.Arbitrary<Doc> = fc
  .tuple(
    fc.oneof(fc.integer({ min: -1000, max: 1000 }), fc.maxSafeInteger()),
    fc.nat(5),
    fc.nat(4),
    fc.boolean(),
  )
  .map(([n, form, zeros, upper]) => {
    const sign = n < 0 ? '-' : '';
    const digits = String(Math.abs(n));
    const text = [
      sign + digits,
      sign + digits + '.' + '0'.repeat(zeros + 1),
      withE(sign + digits + 'e0', upper),
      // Trailing zeros cancelled by the exponent (never after a lone 0: 00e-1 is not JSON).
      withE(sign + digits + (n === 0 ? '' : '0'.repeat(zeros)) + 'e-' + String(n === 0 ? 0 : zeros), upper),
      withE(
        sign +
          digits[0] +
          (digits.length > 1 ? '.' + digits.slice(1) : '') +
          'e+' +
          String(digits.length - 1),
        upper,
      ),
      withE(sign + '0.' + digits + 'e' + String(digits.length), upper),
    ][form]!;
    return leaf(text, n === 0 ? 0 : n);
  });

/** Finite doubles outside the unsafe integer band, written as ES, exponent or 17-digit text. */
const safeDoubleArb: fc.Arbitrary<Doc> = fc
  .tuple(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.nat(2), fc.boolean())
  .filter(([x]) => Math.abs(x) <= MAX_SAFE || Math.abs(x) >= 1e21)
  .map(([x, form, upper]) => {
    const text = [String(x), x.toExponential(), x.toPrecision(17)][form]!;
    return leaf(withE(text, upper), x === 0 ? 0 : x);
  });

/** Zero, however written: never an underflow. */
const zeroArb: fc.Arbitrary<Doc> = fc
  .constantFrom('0', '-0', '0.0', '-0.000', '0e0', '0E+5', '0e-400', '-0.0e-99999', '0.00E999')
  .map((t) => leaf(t, 0));

const nonZeroDigitsArb = fc
  .tuple(fc.integer({ min: 1, max: 9 }), fc.string({ unit: fc.constantFrom(...'0123456789'), maxLength: 8 }))
  .map(([d, rest]) => String(d) + rest);

/** Numbers SPEC §8 denies, each in several spellings. */
const unsafeNumberArb: fc.Arbitrary<Doc> = fc.oneof(
  // An integer literal past ±(2^53−1), however long.
  fc
    .tuple(fc.bigInt({ min: 2n ** 53n, max: 10n ** 40n }), fc.boolean())
    .map(([n, neg]) => unsafe((neg ? '-' : '') + n.toString())),
  // An integral value in (2^53−1, 1e21), in any spelling.
  fc
    .tuple(fc.double({ min: 2 ** 53, max: 1e21, maxExcluded: true, noNaN: true }), fc.nat(2), fc.boolean())
    .map(([x, form, neg]) =>
      unsafe((neg ? '-' : '') + [String(x), x.toExponential(), x.toPrecision(17)][form]!),
    ),
  // Overflow to ±Infinity.
  fc
    .tuple(nonZeroDigitsArb, fc.integer({ min: 400, max: 99999 }), fc.boolean(), fc.boolean())
    .map(([m, e, neg, upper]) =>
      unsafe(withE((neg ? '-' : '') + m[0] + '.' + m.slice(1) + '0e+' + String(e), upper)),
    ),
  // A non-zero literal that underflows to 0.
  fc
    .tuple(nonZeroDigitsArb, fc.integer({ min: 400, max: 99999 }), fc.boolean(), fc.boolean(), fc.nat(3))
    .map(([m, e, neg, upper, zeros]) =>
      unsafe(withE((neg ? '-' : '') + '0.' + '0'.repeat(zeros) + m + 'e-' + String(e), upper)),
    ),
);

const literalArb: fc.Arbitrary<Doc> = fc.constantFrom(
  leaf('true', true),
  leaf('false', false),
  leaf('null', null),
);

const goodLeafArb: fc.Arbitrary<Doc> = fc.oneof(
  literalArb,
  safeIntegerArb,
  safeDoubleArb,
  zeroArb,
  goodStringArb,
);
/** About one leaf in fifteen is a planted fault. */
const leafArb: fc.Arbitrary<Doc> = fc.oneof(
  { arbitrary: goodLeafArb, weight: 28 },
  { arbitrary: unsafeNumberArb, weight: 1 },
  { arbitrary: loneSurrogateArb, weight: 1 },
);
/** A member name: well-formed, or (rarely) holding an unpaired surrogate. */
const keyArb: fc.Arbitrary<Doc> = fc.oneof(
  { arbitrary: goodStringArb, weight: 30 },
  { arbitrary: loneSurrogateArb, weight: 1 },
);

function renderArray(items: readonly Doc[], ws: readonly string[]): Doc {
  const w = (i: number): string => ws[i % ws.length]!;
  let text = '[' + w(0);
  let fault: Fault | undefined;
  const opens: number[] = [0];
  items.forEach((item, i) => {
    if (i > 0) text += w(2 * i) + ',' + w(2 * i + 1);
    fault = first(fault, shifted(item.fault, text.length));
    item.opens.forEach((o, d) => {
      if (opens[d + 1] === undefined) opens[d + 1] = text.length + o;
    });
    text += item.text;
  });
  text += w(items.length + 7) + ']';
  return { text, value: items.map((i) => i.value), fault, opens };
}

function renderObject(members: readonly (readonly [Doc, Doc])[], ws: readonly string[]): Doc {
  const w = (i: number): string => ws[i % ws.length]!;
  let text = '{' + w(0);
  let fault: Fault | undefined;
  const opens: number[] = [0];
  const seen = new Set<string>();
  const value: Record<string, unknown> = {};
  members.forEach(([key, item], i) => {
    if (i > 0) text += w(3 * i) + ',' + w(3 * i + 1);
    fault = first(fault, shifted(key.fault, text.length));
    if (key.key !== undefined) {
      // The parser compares names after unescaping, when it has read the second one.
      if (seen.has(key.key)) fault = first(fault, { code: 'ERR_JSON_DUPLICATE_KEY', at: text.length });
      seen.add(key.key);
      Object.defineProperty(value, key.key, {
        value: item.value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    text += key.text + w(3 * i + 2) + ':' + w(3 * i + 5);
    fault = first(fault, shifted(item.fault, text.length));
    item.opens.forEach((o, d) => {
      if (opens[d + 1] === undefined) opens[d + 1] = text.length + o;
    });
    text += item.text;
  });
  text += w(members.length + 4) + '}';
  return { text, value, fault, opens };
}

const { doc: docArb } = fc.letrec<{ doc: Doc; array: Doc; object: Doc }>((tie) => ({
  doc: fc.oneof({ depthSize: 'small', maxDepth: 6 }, leafArb, tie('array'), tie('object')),
  array: fc
    .tuple(fc.array(tie('doc'), { maxLength: 5 }), wsListArb)
    .map(([items, ws]) => renderArray(items, ws)),
  object: fc
    .tuple(
      fc.array(fc.tuple(keyArb, tie('doc')), { maxLength: 4 }),
      // Sometimes repeat a member name, spelled its own way: a planted duplicate.
      fc.oneof(
        { arbitrary: fc.constant(null), weight: 12 },
        { arbitrary: fc.tuple(fc.nat(), fc.nat(), choicesArb, tie('doc')), weight: 1 },
      ),
      wsListArb,
    )
    .map(([members, dup, ws]) => {
      const all = [...members];
      if (dup !== null && members.length > 0) {
        const [pick, at, choices, value] = dup;
        const name = members[pick % members.length]![0];
        if (name.key !== undefined) {
          const again: Doc = { ...name, text: '"' + spell(name.key, choices) + '"' };
          all.splice(at % (all.length + 1), 0, [again, value]);
        }
      }
      return renderObject(all, ws);
    }),
}));

/** A document, its limits, and the verdict by construction. */
const caseArb = fc
  .tuple(docArb, wsArb, wsArb, fc.oneof(fc.constant(undefined), fc.nat(3)))
  .map(([doc, lead, trail, slack]) => {
    const depth = doc.opens.length;
    // maxDepth: the default (64, never reached here), or near the document's own depth.
    const maxDepth = slack === undefined ? undefined : Math.max(0, depth + 1 - slack);
    const deep =
      maxDepth !== undefined && depth > maxDepth
        ? { code: 'ERR_JSON_TOO_DEEP' as const, at: doc.opens[maxDepth]! }
        : undefined;
    const fault = first(doc.fault, deep);
    const expected: Outcome = fault === undefined ? 'accept' : fault.code;
    return { text: lead + doc.text + trail, value: doc.value, maxDepth, expected };
  });

// ---- 2. the differential oracle -------------------------------------------------------------

const STRICT_POLICY: readonly DenialCode[] = [
  'ERR_JSON_DUPLICATE_KEY',
  'ERR_JSON_UNSAFE_NUMBER',
  'ERR_JSON_LONE_SURROGATE',
  'ERR_JSON_TOO_DEEP',
];

/** SPEC §8 on one number token of valid JSON, written independently of the parser. */
function numberViolates(token: string): boolean {
  const value = Number(token);
  if (!Number.isFinite(value)) return true;
  const mantissa = token.split(/[eE]/)[0]!;
  if (value === 0) return /[1-9]/.test(mantissa);
  const integerLiteral = /^-?\d+$/.test(token);
  return Math.abs(value) > MAX_SAFE && (integerLiteral || Math.abs(value) < 1e21);
}

/**
 * The strict policy violations of a text that JSON.parse accepted (so it is valid RFC 8259
 * JSON and a token scanner suffices): duplicate names per object, unsafe numbers, unpaired
 * surrogates (raw in the text, or in any string after unescaping), nesting past `maxDepth`.
 */
function violations(text: string, maxDepth: number): Set<DenialCode> {
  const found = new Set<DenialCode>();
  if (!wellFormed(text)) found.add('ERR_JSON_LONE_SURROGATE');
  const stack: (Set<string> | null)[] = [];
  let expectName = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const s = JSON.parse(text.slice(i, j + 1)) as string;
      if (!wellFormed(s)) found.add('ERR_JSON_LONE_SURROGATE');
      const names = stack.at(-1);
      if (expectName && names) {
        if (names.has(s)) found.add('ERR_JSON_DUPLICATE_KEY');
        names.add(s);
      }
      expectName = false;
      i = j;
    } else if (c === '{' || c === '[') {
      stack.push(c === '{' ? new Set() : null);
      if (stack.length > maxDepth) found.add('ERR_JSON_TOO_DEEP');
      expectName = c === '{';
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',') {
      expectName = stack.at(-1) != null;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      let j = i + 1;
      while (j < text.length && /[0-9eE+\-.]/.test(text[j]!)) j++;
      if (numberViolates(text.slice(i, j))) found.add('ERR_JSON_UNSAFE_NUMBER');
      i = j - 1;
    }
  }
  return found;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Checks `parseJson(input)` against JSON.parse and the policy scanner; returns the outcome. */
function differential(input: string | Uint8Array, maxDepth: number | undefined): Outcome {
  const limits: JsonLimits | undefined = maxDepth === undefined ? undefined : { maxDepth };
  const got = outcome(input, limits);
  let text: string;
  if (typeof input === 'string') {
    text = input;
  } else {
    try {
      text = utf8.decode(input);
    } catch {
      expect(got).toBe('ERR_JSON_INVALID_UTF8');
      return got;
    }
  }
  let reference: unknown;
  try {
    reference = jsonParseOracle(text);
  } catch {
    // Outside the grammar: denied, as a syntax error or a policy code met first.
    expect(got).not.toBe('accept');
    expect(got).not.toBe('ERR_JSON_INVALID_UTF8');
    expect(got).not.toBe('ERR_JSON_TOO_LARGE');
    return got;
  }
  const broken = violations(text, maxDepth ?? 64);
  if (broken.size === 0) {
    expect(got).toBe('accept');
    expect(isDeepStrictEqual(parseJson(input, limits), reference)).toBe(true);
  } else {
    expect(STRICT_POLICY).toContain(got);
    expect(broken.has(got as DenialCode)).toBe(true);
  }
  return got;
}

// ---- 3. mutations ---------------------------------------------------------------------------

/** Bytes that matter to the grammar, UTF-8 lead and continuation bytes, and any byte. */
const byteArb = fc.oneof(
  fc.constantFrom(...Buffer.from('{}[]:,"\\/ \t\n\r0123456789-+.eEtrufalsn u')),
  fc.constantFrom(0x00, 0x1f, 0x7f, 0x80, 0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff),
  fc.integer({ min: 0, max: 0xff }),
);
/** Code units for string input: grammar characters, surrogates of both kinds, any unit. */
const unitArb = fc.oneof(
  fc.constantFrom(...'{}[]:,"\\/ \t\n\r0123456789-+.eEtrufalsn u'),
  fc.constantFrom(
    '\ud800',
    '\udbff',
    '\udc00',
    '\udfff',
    '\ud83d',
    '\ude02',
    '\ufeff',
    '\u00a0',
    '\u0000',
    '\u2028',
  ),
  fc.integer({ min: 0, max: 0xffff }).map((u) => String.fromCharCode(u)),
);

type Edit<T> = readonly ['insert' | 'delete' | 'replace', number, T];
const editsArb = <T>(unit: fc.Arbitrary<T>): fc.Arbitrary<Edit<T>[]> =>
  fc.array(
    fc.tuple(fc.constantFrom('insert' as const, 'delete' as const, 'replace' as const), fc.nat(), unit),
    {
      minLength: 1,
      maxLength: 4,
    },
  );

function applyEdits<T>(items: readonly T[], edits: readonly Edit<T>[]): T[] {
  const out = [...items];
  for (const [op, at, unit] of edits) {
    const i = at % (out.length + (op === 'insert' ? 1 : 0) || 1);
    if (op === 'insert') out.splice(i, 0, unit);
    else if (out.length > 0) out.splice(i, 1, ...(op === 'replace' ? [unit] : []));
  }
  return out;
}

const corpus: readonly Buffer[] = readdirSync(JSON_TEST_SUITE_PARSING_DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => readFileSync(join(JSON_TEST_SUITE_PARSING_DIR, f)));

/** A starting point for mutation: a generated document (often valid) or a JSONTestSuite file. */
const seedArb: fc.Arbitrary<{ bytes: Buffer; maxDepth: number | undefined }> = fc.oneof(
  caseArb.map((c) => ({ bytes: Buffer.from(c.text, 'utf8'), maxDepth: c.maxDepth })),
  fc
    .tuple(fc.constantFrom(...corpus), fc.oneof(fc.constant(undefined), fc.integer({ min: 1, max: 8 })))
    .map(([bytes, maxDepth]) => ({ bytes, maxDepth })),
);

// ---- the tests ------------------------------------------------------------------------------

describe('SPEC §3 strict JSON, fuzzed: grammar-built documents with their verdict by construction', () => {
  it(
    'accepts exactly the fault-free documents, equal to JSON.parse, and names the first fault otherwise',
    () => {
      run(
        'grammar',
        fc.property(caseArb, ({ text, value, maxDepth, expected }) => {
          const limits = maxDepth === undefined ? undefined : { maxDepth };
          expect(outcome(text, limits)).toBe(expected);
          if (wellFormed(text)) expect(outcome(Buffer.from(text, 'utf8'), limits)).toBe(expected);
          if (expected === 'accept') {
            const parsed = parseJson(text, limits);
            expect(isDeepStrictEqual(parsed, jsonParseOracle(text))).toBe(true);
            expect(isDeepStrictEqual(parsed, value)).toBe(true);
          }
          // The policy scanner of the mutation oracle agrees with the construction.
          differential(text, maxDepth);
        }),
        600,
        600_000,
        0x5eed_0001,
      );
    },
    TIMEOUT,
  );
});

describe('SPEC §3 strict JSON, fuzzed: mutated documents against a differential oracle', () => {
  it(
    'UTF-8 bytes with bytes inserted, deleted or replaced (generated documents and JSONTestSuite)',
    () => {
      run(
        'bytes',
        fc.property(seedArb, editsArb(byteArb), ({ bytes, maxDepth }, edits) => {
          differential(Buffer.from(applyEdits([...bytes], edits)), maxDepth);
        }),
        500,
        300_000,
        0x5eed_0002,
      );
    },
    TIMEOUT,
  );

  it(
    'JS strings with code units (lone surrogates among them) inserted, deleted or replaced',
    () => {
      run(
        'string',
        fc.property(caseArb, editsArb(unitArb), ({ text, maxDepth }, edits) => {
          differential(applyEdits(text.split(''), edits).join(''), maxDepth);
        }),
        400,
        200_000,
        0x5eed_0003,
      );
    },
    TIMEOUT,
  );
});

// ---- regressions ----------------------------------------------------------------------------

/** A regression file: an input that once made this fuzz target fail. */
interface Regression {
  readonly test: string;
  /** The input: a JS string (`text`) or UTF-8 bytes in hex (`hex`). */
  readonly text?: string;
  readonly hex?: string;
  readonly maxDepth?: number;
  /** The outcome it must have. */
  readonly expected: Outcome;
}

const regressionFiles = readdirSync(REGRESSIONS_DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => [f, JSON.parse(readFileSync(join(REGRESSIONS_DIR, f), 'utf8')) as Regression] as const);
const regressions = regressionFiles.filter(([, r]) => r.test === THIS_FILE);

describe('SPEC §3 strict JSON, fuzzed: regressions (test/fuzz/regressions)', () => {
  it('every regression file names a fuzz test that exists, so none is silently skipped', () => {
    const fuzzTests = readdirSync(join(REGRESSIONS_DIR, '..')).filter((f) => f.endsWith('.fuzz.test.ts'));
    expect(fuzzTests).toContain(THIS_FILE);
    for (const [f, r] of regressionFiles) expect(fuzzTests, f).toContain(r.test);
  });

  it.each(regressions)('%s', (_f, r) => {
    expect(r.text === undefined).not.toBe(r.hex === undefined);
    const input = r.hex !== undefined ? Buffer.from(r.hex, 'hex') : r.text!;
    expect(differential(input, r.maxDepth)).toBe(r.expected);
  });
});
