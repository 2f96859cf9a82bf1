/**
 * Tests assert outcomes and codes (issue 8 "House upkeep"; STYLE "Tests that can fail"): a
 * rejection or a throw is pinned to its denial code, error class or message, and a deny to its
 * code. Assertions that any failure would satisfy are refused here, so a test cannot pass on a
 * wrong failure.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './support/paths.js';

const WEAK: readonly [RegExp, string][] = [
  [/\.rejects\.toBeDefined\(\)/, 'rejects.toBeDefined(): assert the code or error class'],
  [/\.rejects\.toBeTruthy\(\)/, 'rejects.toBeTruthy(): assert the code or error class'],
  [/(?<!\.not)\.toThrow\(\s*\)/, 'toThrow() without a code, class or message'],
  [/\.toThrowError\(\s*\)/, 'toThrowError() without a code, class or message'],
  [/\.toMatchObject\(\{\s*outcome:\s*'deny'\s*\}\)/, "toMatchObject({ outcome: 'deny' }) without its code"],
];

export function weakAssertions(name: string, text: string): string[] {
  const found: string[] = [];
  text.split('\n').forEach((line, i) => {
    for (const [re, why] of WEAK) if (re.test(line)) found.push(`${name}:${i + 1} ${why}`);
  });
  return found;
}

function testFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...testFiles(p));
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

describe('tests assert codes', () => {
  it('no test uses an assertion any failure would satisfy', () => {
    const self = fileURLToPath(import.meta.url);
    const found = testFiles(join(REPO_ROOT, 'test'))
      .filter((f) => f !== self)
      .flatMap((f) => weakAssertions(relative(REPO_ROOT, f), readFileSync(f, 'utf8')));
    expect(found).toEqual([]);
  });

  it('the scan catches each weak form and lets pinned ones through (it can fail)', () => {
    const weak = [
      'await expect(p).rejects.toBeDefined();',
      'expect(() => f()).toThrow();',
      'expect(() => f()).toThrowError( );',
      "expect(r).toMatchObject({ outcome: 'deny' });",
    ];
    for (const line of weak) expect(weakAssertions('x.ts', line), line).toHaveLength(1);
    const pinned = [
      "await expect(p).rejects.toMatchObject({ code: 'ERR_LEDGER_UNAVAILABLE' });",
      'expect(() => f()).toThrow(TypeError);',
      'expect(() => f()).not.toThrow();',
      "expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_DENY' });",
    ];
    for (const line of pinned) expect(weakAssertions('x.ts', line), line).toEqual([]);
  });
});
