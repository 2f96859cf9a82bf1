/**
 * RFC 8785 (JCS) canonical JSON: upstream vectors (`VECTORS_DIR/jcs`), the ES6 number sequence,
 * and properties. Canonical bytes are what `params_sha256`, envelopes and ledger entries hash
 * (SPEC §3 params_sha256 and Determinism (GEI), SPEC §8 JSON numbers).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { canonicalBytes, canonicalize, formatJcsNumber } from '../../src/kernel/canonical.js';
import { parseJson } from '../../src/kernel/json.js';
import type { JsonValue } from '../../src/kernel/json.js';
import { FailclosedError } from '../../src/kernel/errors.js';
import type { DenialCode } from '../../src/kernel/errors.js';
import { VECTORS_DIR } from '../support/paths.js';

const JCS_DIR = join(VECTORS_DIR, 'jcs');

function codeOf(f: () => unknown): DenialCode | 'ok' {
  try {
    f();
    return 'ok';
  } catch (err) {
    if (err instanceof FailclosedError) return err.code;
    throw err;
  }
}

const asJson = (v: unknown): JsonValue => v as JsonValue;

describe('RFC 8785 vectors (jcs/input → jcs/output, jcs/outhex)', () => {
  const read = (sub: string, name: string): Buffer => readFileSync(join(JCS_DIR, sub, name));
  const fromHex = (name: string): Buffer =>
    Buffer.from(read('outhex', `${name}.txt`).toString('ascii').replace(/\s+/g, ''), 'hex');

  it.each(['arrays', 'french', 'structures', 'unicode', 'weird'])('%s', (name) => {
    const out = canonicalBytes(parseJson(read('input', `${name}.json`)));
    expect(out.equals(read('output', `${name}.json`))).toBe(true);
    expect(out.equals(fromHex(name))).toBe(true);
  });

  it('values gives the expected bytes exactly (1E30 is exact in exponent form)', () => {
    const out = canonicalBytes(parseJson(read('input', 'values.json')));
    expect(out.equals(read('output', 'values.json'))).toBe(true);
    expect(out.equals(fromHex('values'))).toBe(true);
  });
});

describe('ES6 number serialization (jcs/es6numbers/es6testfile_first10000.txt)', () => {
  it('formats every finite line exactly, and canonicalize applies the safe range', () => {
    const lines = readFileSync(join(JCS_DIR, 'es6numbers', 'es6testfile_first10000.txt'), 'ascii')
      .split('\n')
      .filter((l) => l.length > 0);
    let ran = 0;
    let safe = 0;
    let denied = 0;
    let skipped = 0;
    const mismatches: string[] = [];
    for (const line of lines) {
      const [hex = '', expected = ''] = line.split(',');
      const d = Buffer.from(hex.padStart(16, '0'), 'hex').readDoubleBE(0);
      if (!Number.isFinite(d)) {
        skipped++;
        continue;
      }
      ran++;
      if (formatJcsNumber(d) !== expected) mismatches.push(`format ${line}`);
      if (!(Number.isInteger(d) && Math.abs(d) > Number.MAX_SAFE_INTEGER && Math.abs(d) < 1e21)) {
        safe++;
        if (canonicalize(d) !== expected) mismatches.push(`canonicalize ${line}`);
        const back = parseJson(expected);
        if (back !== (d === 0 ? 0 : d)) mismatches.push(`parse ${line}`);
      } else {
        if (codeOf(() => canonicalize(d)) === 'ERR_JSON_UNSAFE_NUMBER') denied++;
        else mismatches.push(`not denied ${line}`);
        if (codeOf(() => parseJson(expected)) !== 'ERR_JSON_UNSAFE_NUMBER') mismatches.push(`parsed ${line}`);
      }
    }
    expect(mismatches).toEqual([]);
    expect(lines).toHaveLength(10_000);
    expect(skipped).toBe(0);
    expect(ran).toBe(10_000);
    expect(safe).toBe(9916);
    expect(denied).toBe(84);
  });
});

describe('canonicalize', () => {
  it('sorts members by UTF-16 code units, recursively', () => {
    expect(canonicalize({ b: 1, a: { d: [], c: {} }, A: null })).toBe('{"A":null,"a":{"c":{},"d":[]},"b":1}');
    // U+1F602 is D83D DE02 in UTF-16, which sorts before U+FB33 although its code point is larger.
    expect(canonicalize({ '\ufb33': 1, '\u{1f602}': 2 })).toBe('{"\u{1f602}":2,"\ufb33":1}');
    expect(canonicalize({ '10': 1, '9': 2, '': 3 })).toBe('{"":3,"10":1,"9":2}');
  });

  it('escapes strings minimally (RFC 8785 §3.2.2.2)', () => {
    const controls = Array.from({ length: 0x20 }, (_, i) => String.fromCharCode(i)).join('');
    expect(canonicalize(controls)).toBe(
      '"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f' +
        '\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f"',
    );
    expect(canonicalize('"\\/\u007f\u2028é😂</script>')).toBe('"\\"\\\\/\u007f\u2028é😂</script>"');
  });

  it('writes numbers in ES6 form, -0 as 0', () => {
    expect(
      canonicalize([-0, 0, 1, -1, 0.1, 1e-7, 123.456, 9007199254740991, -9007199254740991, 5e-324]),
    ).toBe('[0,0,1,-1,0.1,1e-7,123.456,9007199254740991,-9007199254740991,5e-324]');
  });

  it('denies numbers that are not finite or would be written as integers beyond ±(2^53−1)', () => {
    expect(canonicalize([1e21, -1e300, 1.5e300])).toBe('[1e+21,-1e+300,1.5e+300]');
    for (const n of [NaN, Infinity, -Infinity, 2 ** 53, -(2 ** 53), 1e20, -9.99e20]) {
      expect(
        codeOf(() => canonicalize(n)),
        String(n),
      ).toBe('ERR_JSON_UNSAFE_NUMBER');
      expect(
        codeOf(() => canonicalize({ a: [n] })),
        String(n),
      ).toBe('ERR_JSON_UNSAFE_NUMBER');
    }
    expect(codeOf(() => formatJcsNumber(NaN))).toBe('ERR_JSON_UNSAFE_NUMBER');
  });

  it('denies unpaired surrogates in values and member names', () => {
    for (const s of ['\ud800', '\udc00', 'a\ud83d', '\ude02\ud83d']) {
      expect(codeOf(() => canonicalize(s))).toBe('ERR_JSON_LONE_SURROGATE');
      expect(codeOf(() => canonicalize({ [s]: 1 }))).toBe('ERR_JSON_LONE_SURROGATE');
    }
  });

  it('throws TypeError for values JSON cannot carry', () => {
    class Point {
      x = 1;
    }
    const bad: unknown[] = [
      undefined,
      () => 1,
      1n,
      Symbol('s'),
      new Date(0),
      new Map(),
      new Point(),
      new Uint8Array(1),
      { a: undefined },
      [1, undefined],
      // eslint-disable-next-line no-sparse-arrays
      [1, , 2],
    ];
    for (const v of bad) expect(() => canonicalize(asJson(v))).toThrow(TypeError);
  });

  it('accepts null-prototype objects and denies cycles', () => {
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { b: 1, a: 2 });
    expect(canonicalize(asJson(bare))).toBe('{"a":2,"b":1}');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(codeOf(() => canonicalize(asJson(cyclic)))).toBe('ERR_JSON_TOO_DEEP');
  });

  it('SPEC §3 Determinism (GEI): the depth guard stops a cyclic array as it stops a cyclic object', () => {
    const cyclic: unknown[] = [1];
    cyclic.push(cyclic);
    expect(codeOf(() => canonicalize(asJson(cyclic)))).toBe('ERR_JSON_TOO_DEEP');
    expect(codeOf(() => canonicalBytes(asJson({ a: [cyclic] })))).toBe('ERR_JSON_TOO_DEEP');
    const viaObject: unknown[] = [];
    viaObject.push({ back: viaObject });
    expect(codeOf(() => canonicalize(asJson(viaObject)))).toBe('ERR_JSON_TOO_DEEP');
  });

  it('SPEC §3 Determinism (GEI): encodes exactly 1000 levels of nesting and denies 1001', () => {
    const arrays = (n: number): unknown => {
      let v: unknown = 0;
      for (let i = 0; i < n; i++) v = [v];
      return v;
    };
    const objects = (n: number): unknown => {
      let v: unknown = {};
      for (let i = 1; i < n; i++) v = { a: v };
      return v;
    };
    expect(canonicalize(asJson(arrays(1000)))).toBe('['.repeat(1000) + '0' + ']'.repeat(1000));
    expect(codeOf(() => canonicalize(asJson(arrays(1001))))).toBe('ERR_JSON_TOO_DEEP');
    expect(canonicalize(asJson(objects(1000)))).toBe('{"a":'.repeat(999) + '{}' + '}'.repeat(999));
    expect(codeOf(() => canonicalize(asJson(objects(1001))))).toBe('ERR_JSON_TOO_DEEP');
    expect(codeOf(() => canonicalize(asJson([objects(1000)])))).toBe('ERR_JSON_TOO_DEEP');
    // Whatever the strict parser accepts at its ceiling, canonicalize encodes.
    const deepest = '['.repeat(1000) + ']'.repeat(1000);
    expect(canonicalize(parseJson(deepest, { maxDepth: 1000 }))).toBe(deepest);
  });

  it('SPEC §8 JSON numbers: ±1e21 and beyond are exact in exponent form, ±(2^53−1) is the last integer', () => {
    expect(canonicalize([1e21, -1e21, 2e21, -2e21])).toBe('[1e+21,-1e+21,2e+21,-2e+21]');
    expect(canonicalize([2 ** 53 - 1, -(2 ** 53 - 1), 2 ** 51 + 0.5])).toBe(
      '[9007199254740991,-9007199254740991,2251799813685248.5]',
    );
    for (const n of [2 ** 53, -(2 ** 53), 9.99e20, -9.99e20, 1e21 - 131072, -(1e21 - 131072)]) {
      expect(
        codeOf(() => canonicalize(n)),
        String(n),
      ).toBe('ERR_JSON_UNSAFE_NUMBER');
    }
    expect(formatJcsNumber(-0)).toBe('0');
    expect(formatJcsNumber(2 ** 60)).toBe('1152921504606847000');
    for (const n of [Infinity, -Infinity])
      expect(codeOf(() => formatJcsNumber(n))).toBe('ERR_JSON_UNSAFE_NUMBER');
  });

  it('writes the literals true, false and null, also inside containers', () => {
    expect(canonicalize(true)).toBe('true');
    expect(canonicalize(false)).toBe('false');
    expect(canonicalize(null)).toBe('null');
    expect(canonicalize([true, false, null, {}, [], ''])).toBe('[true,false,null,{},[],""]');
    expect(canonicalize({ b: false, a: [true] })).toBe('{"a":[true],"b":false}');
  });

  it('canonicalBytes is the UTF-8 of canonicalize', () => {
    expect(canonicalBytes({ é: '€' }).equals(Buffer.from('{"é":"€"}', 'utf8'))).toBe(true);
  });
});

// ---- properties ----------------------------------------------------------------------------

const keyArb = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 6 }),
  fc.constantFrom(
    '__proto__',
    'constructor',
    'toString',
    'a',
    'A',
    '1',
    '10',
    'é',
    'e\u0301',
    '\u{1f602}',
    '\ufb33',
  ),
);

/** Builds a plain object from entries, keeping `__proto__` an own member. */
function objectFrom(entries: readonly (readonly [string, unknown])[]): Record<string, unknown> {
  const obj: Record<string, unknown> = {};
  for (const [k, v] of entries)
    Object.defineProperty(obj, k, { value: v, enumerable: true, writable: true, configurable: true });
  return obj;
}

const { json: jsonArb } = fc.letrec<{ json: unknown }>((tie) => ({
  json: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.maxSafeInteger(),
    fc
      .double({ noNaN: true, min: -Number.MAX_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER })
      .map((d) => (d === 0 ? 0 : d)),
    fc.string({ unit: 'binary' }),
    fc.array(tie('json'), { maxLength: 5 }),
    fc.uniqueArray(fc.tuple(keyArb, tie('json')), { selector: (e) => e[0], maxLength: 5 }).map(objectFrom),
  ),
}));

/** Deterministic deep reordering of object members, driven by `seed`. */
function reorder(v: unknown, seed: number): unknown {
  if (Array.isArray(v)) return v.map((x) => reorder(x, seed));
  if (v === null || typeof v !== 'object') return v;
  let s = seed >>> 0;
  const entries = Object.entries(v).map(([k, x]) => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return [s, [k, reorder(x, seed)]] as const;
  });
  entries.sort((a, b) => a[0] - b[0]);
  return objectFrom(entries.map((e) => e[1]));
}

/** UTF-16 code unit order, written out rather than relying on the default sort. */
function compareUnits(a: string, b: string): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const d = a.charCodeAt(i) - b.charCodeAt(i);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** Independent RFC 8785 encoder: JSON.stringify for scalars, explicit member order. */
function referenceJcs(v: unknown): string {
  if (Array.isArray(v)) return '[' + v.map(referenceJcs).join(',') + ']';
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  const record = v as Record<string, unknown>;
  const keys = Object.keys(record).sort(compareUnits);
  return '{' + keys.map((k) => JSON.stringify(k) + ':' + referenceJcs(record[k])).join(',') + '}';
}

/** A member name spelled entirely with \u escapes. */
const escapedName = (k: string): string =>
  '"' +
  Array.from({ length: k.length }, (_, i) => '\\u' + k.charCodeAt(i).toString(16).padStart(4, '0')).join('') +
  '"';

describe('canonical JSON properties', () => {
  it('member order does not matter', () => {
    fc.assert(
      fc.property(
        jsonArb,
        fc.integer(),
        (v, seed) => canonicalize(asJson(reorder(v, seed))) === canonicalize(asJson(v)),
      ),
    );
  });

  it('equals an independent reference encoder', () => {
    fc.assert(fc.property(jsonArb, (v) => canonicalize(asJson(v)) === referenceJcs(v)));
  });

  it('is idempotent through the strict parser', () => {
    fc.assert(
      fc.property(jsonArb, (v) => {
        const c = canonicalize(asJson(v));
        return canonicalize(parseJson(c)) === c && canonicalize(parseJson(Buffer.from(c, 'utf8'))) === c;
      }),
    );
  });

  it('parse ∘ canonicalize round-trips to a deep-equal value', () => {
    fc.assert(
      fc.property(jsonArb, (v) => {
        expect(parseJson(canonicalize(asJson(v)))).toEqual(v);
      }),
    );
  });

  it('a repeated member name is always denied, however it is spelled', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.tuple(keyArb, jsonArb), { selector: (e) => e[0], minLength: 1, maxLength: 5 }),
        fc.nat(),
        fc.nat(),
        fc.boolean(),
        (entries, pick, at, escape) => {
          const members = entries.map(([k, v]) => JSON.stringify(k) + ':' + canonicalize(asJson(v)));
          const [k, v] = entries[pick % entries.length]!;
          const name = escape ? escapedName(k) : JSON.stringify(k);
          members.splice(at % (members.length + 1), 0, name + ':' + canonicalize(asJson(v)));
          const text = '{' + members.join(',') + '}';
          expect(codeOf(() => parseJson(text))).toBe('ERR_JSON_DUPLICATE_KEY');
          expect(codeOf(() => parseJson('[' + text + ']'))).toBe('ERR_JSON_DUPLICATE_KEY');
        },
      ),
    );
  });

  it('integer literals beyond ±(2^53−1) are always denied; 9007199254740993 among them', () => {
    expect(codeOf(() => parseJson('9007199254740993'))).toBe('ERR_JSON_UNSAFE_NUMBER');
    fc.assert(
      fc.property(fc.bigInt({ min: 2n ** 53n, max: 2n ** 80n }), fc.boolean(), (n, negative) => {
        const literal = (negative ? '-' : '') + n.toString();
        expect(codeOf(() => parseJson(`{"n":${literal}}`))).toBe('ERR_JSON_UNSAFE_NUMBER');
      }),
    );
    fc.assert(fc.property(fc.maxSafeInteger(), (n) => parseJson(String(n)) === (n === 0 ? 0 : n)));
  });
});
