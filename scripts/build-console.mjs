// @ts-check
// Builds the browser console (docs/console.md): its modules with their own tsconfig (lib dom) into
// dist/src/console/web, next to the page and style sheet they are served with.
import { copyFileSync, mkdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src', 'console', 'web');
const out = join(root, 'dist', 'src', 'console', 'web');
execFileSync(
  process.execPath,
  [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(src, 'tsconfig.json')],
  {
    stdio: 'inherit',
  },
);
mkdirSync(out, { recursive: true });
for (const name of ['index.html', 'operator.html', 'console.css'])
  copyFileSync(join(src, name), join(out, name));
