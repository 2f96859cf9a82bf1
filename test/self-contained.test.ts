/**
 * The test suite is self-contained (issue 8 "Self-contained tests"): a fresh clone with no
 * sibling folders passes it. The public vectors live in `test/fixtures/vectors` with their
 * licences, and every byte is pinned by its `SHA256SUMS`; no test file names a path outside
 * the checkout.
 */
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/** The sibling folder a clone does not have, spelled so that this file itself does not name it. */
const SIBLING = ['..', 'shared'].join('/');
import { REPO_ROOT, VECTORS_DIR } from './support/paths.js';

const inside = (root: string, p: string): boolean => p === root || p.startsWith(root + sep);

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

describe('the vendored public vectors', () => {
  const sums = new Map(
    readFileSync(join(VECTORS_DIR, 'SHA256SUMS'), 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => {
        const m = /^([0-9a-f]{64}) {2}\.\/(.+)$/.exec(l);
        if (m === null) throw new Error(`malformed SHA256SUMS line: ${l}`);
        return [m[2]!, m[1]!] as const;
      }),
  );

  it('live inside the repository', () => {
    expect(inside(REPO_ROOT, VECTORS_DIR)).toBe(true);
  });

  it('match SHA256SUMS byte for byte, and every file present is listed', () => {
    const present = filesUnder(VECTORS_DIR)
      .map((p) => relative(VECTORS_DIR, p).split(sep).join('/'))
      .filter((p) => p !== 'README.md' && p !== 'SHA256SUMS');
    expect(present.sort()).toEqual([...sums.keys()].sort());
    for (const p of present) {
      const digest = createHash('sha256')
        .update(readFileSync(join(VECTORS_DIR, p)))
        .digest('hex');
      expect(digest, p).toBe(sums.get(p));
    }
  });

  it('carry the licence of every source they come from', () => {
    for (const licence of [
      'jcs/LICENSE',
      'merkle/LICENSE',
      'json/LICENSE',
      'ed25519/LICENSE.wycheproof',
      'ed25519/LICENSE.cctv',
      'checkpoint/LICENSE-BSD-1-CLAUSE.c2sp',
      'checkpoint/tessera-testdata-log/LICENSE',
    ]) {
      expect(sums.has(licence), licence).toBe(true);
    }
  });
});

/** Absolute paths a checkout must not depend on (system binaries such as /usr/bin/env are fine). */
const OUTSIDE_PREFIXES = /['"`](?:\/(?:work|home|Users|root)\/|[A-Za-z]:\\)/;
/** A relative path literal: resolved against the file's folder it must stay in the checkout. */
const RELATIVE_LITERAL = /['"`]((?:\.\.\/)+[^'"`\s]*)['"`]/g;
/** `resolve(REPO_ROOT, '..')`, `join(REPO_ROOT, '../x')` and the like climb out of the checkout. */
const ROOT_CLIMB = /REPO_ROOT\s*,\s*['"`]\.\.(?:[/'"`])/;

export function outsideReferences(file: string, text: string, root: string): string[] {
  const found: string[] = [];
  text.split('\n').forEach((line, i) => {
    const at = `${relative(root, file)}:${i + 1}`;
    if (line.includes(SIBLING) || /['"`]shared\/vectors/.test(line)) found.push(`${at} names ${SIBLING}`);
    if (OUTSIDE_PREFIXES.test(line)) found.push(`${at} names an absolute path outside the checkout`);
    if (ROOT_CLIMB.test(line)) found.push(`${at} climbs above REPO_ROOT`);
    for (const m of line.matchAll(RELATIVE_LITERAL)) {
      if (!inside(root, resolve(dirname(file), m[1]!))) found.push(`${at} ${m[1]} leaves the checkout`);
    }
  });
  return found;
}

describe('no test reads outside the checkout', () => {
  const sources = [
    ...filesUnder(join(REPO_ROOT, 'test')).filter(
      (p) => /\.(ts|js|mjs|cjs)$/.test(p) && p !== fileURLToPath(import.meta.url),
    ),
    join(REPO_ROOT, 'vitest.config.ts'),
  ];

  it('finds no reference to the sibling shared folder, a home folder or a path above the repository', () => {
    const found = sources.flatMap((f) => outsideReferences(f, readFileSync(f, 'utf8'), REPO_ROOT));
    expect(found).toEqual([]);
  });

  it('the scan itself catches each form (it can fail)', () => {
    const file = join(REPO_ROOT, 'test/kernel/x.test.ts');
    const bad = [
      `const D = resolve(REPO_ROOT, '${SIBLING}/vectors');`,
      "readFileSync('/work/shared/vectors/jcs/input/arrays.json');",
      "readFileSync('/home/user/vectors.json');",
      "join(REPO_ROOT, '..', 'shared');",
      "readFileSync(new URL('../../../elsewhere/v.json', import.meta.url));",
    ];
    for (const line of bad) expect(outsideReferences(file, line, REPO_ROOT), line).not.toEqual([]);
    const fine = ["import { x } from '../../src/kernel/index.js';", "spawnSync('/usr/bin/env', []);"];
    for (const line of fine) expect(outsideReferences(file, line, REPO_ROOT), line).toEqual([]);
  });
});
