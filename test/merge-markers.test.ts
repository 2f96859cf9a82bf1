/**
 * No source or document of the project holds an unresolved merge: a conflict left in
 * `docs/COMPLIANCE.md` once showed an auditor two versions of the same requirement rows.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './support/paths.js';

const ROOTS = [
  'README.md',
  'DEPENDENCIES.md',
  'docs',
  'src',
  'test',
  'bench',
  'deploy',
  'scripts',
  'examples',
  '.ci',
];
const TEXT = /\.(?:md|ts|mjs|js|json|yaml|yml|cedar|sh|service|html|css)$|^run$|^Dockerfile$/;
const MARKER = /^(?:<{7} |={7}$|>{7} )/m;

function files(p: string): string[] {
  let st;
  try {
    st = statSync(p);
  } catch {
    return [];
  }
  if (!st.isDirectory()) return [p];
  return readdirSync(p)
    .filter((n) => n !== 'node_modules' && n !== 'dist')
    .flatMap((n) => files(join(p, n)));
}

describe('the tree', () => {
  it('holds no merge conflict marker', () => {
    const found = ROOTS.flatMap((r) => files(join(REPO_ROOT, r)))
      .filter((f) => TEXT.test(f.split('/').pop() ?? ''))
      .filter((f) => MARKER.test(readFileSync(f, 'utf8')))
      .map((f) => relative(REPO_ROOT, f));
    expect(found).toEqual([]);
  });
});
