/**
 * docs/denial-codes.md is rendered from the one catalog (src/kernel/errors.ts) and must match it,
 * so the documented codes cannot drift from the code (FC "Spec Drift Warning").
 * `UPDATE_DOCS=1 npx vitest run test/docs` rewrites the file.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DENIAL_CODES } from '../../src/kernel/index.js';
import { REPO_ROOT } from '../support/paths.js';

function render(): string {
  const rows = Object.entries(DENIAL_CODES).map(
    ([code, { status, meaning }]) => `| \`${code}\` | ${status} | ${meaning} |`,
  );
  return [
    '# Denial codes',
    '',
    'Every refusal failclosed makes carries exactly one of these codes; the HTTP status is what the',
    'Gate answers with. The table is rendered from `src/kernel/errors.ts` and checked by',
    '`test/docs/denial-codes.test.ts`.',
    '',
    '| code | HTTP | meaning |',
    '| --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}

describe('docs/denial-codes.md', () => {
  it('matches the catalog in src/kernel/errors.ts', () => {
    const path = join(REPO_ROOT, 'docs', 'denial-codes.md');
    if (process.env['UPDATE_DOCS'] === '1') writeFileSync(path, render());
    expect(readFileSync(path, 'utf8')).toBe(render());
  });
});
