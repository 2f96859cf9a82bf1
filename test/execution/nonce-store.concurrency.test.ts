/**
 * SPEC §7 scenario 6 and §8 nonce store row: N concurrent replays across separate connections
 * in separate threads, each opening the same SQLite file, yield exactly one 'fresh'.
 *
 * The workers load the real `src/execution/sqlite-nonce-store.ts` with its import-free
 * `group-commit.ts` and the kernel's import-free `schema-migrations.ts`, transpiled on the fly,
 * so the statement under test is the shipped one (and 32 connections migrate one new file at once).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/paths.js';

const WORKERS = 32;
let dir: string;
let workerFile: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fc-nonce-race-'));
  const transpile = (file: string): string =>
    ts.transpileModule(readFileSync(resolve(REPO_ROOT, file), 'utf8'), {
      compilerOptions: {
        module: ts.ModuleKind.ESNext,
        target: ts.ScriptTarget.ES2022,
        verbatimModuleSyntax: true,
      },
    }).outputText;
  const sqliteUrl = pathToFileURL(createRequire(import.meta.url).resolve('better-sqlite3')).href;
  const rewritten = transpile('src/execution/sqlite-nonce-store.ts')
    .replace(/from 'better-sqlite3'/, `from '${sqliteUrl}'`)
    .replace(/from '\.\/group-commit\.js'/, `from './group-commit.mjs'`)
    .replace(/from '\.\.\/kernel\/index\.js'/, `from './kernel.mjs'`);
  expect(rewritten).toContain(sqliteUrl);
  expect(rewritten).toContain('./group-commit.mjs');
  expect(rewritten).toContain('./kernel.mjs');
  expect(rewritten).not.toContain('../kernel/index.js');
  writeFileSync(join(dir, 'store.mjs'), rewritten);
  writeFileSync(join(dir, 'group-commit.mjs'), transpile('src/execution/group-commit.ts'));
  writeFileSync(join(dir, 'schema-migrations.mjs'), transpile('src/kernel/schema-migrations.ts'));
  // The kernel's schema runner and the stores' connection opener: the workers load them alone.
  writeFileSync(
    join(dir, 'sqlite-store.mjs'),
    transpile('src/kernel/sqlite-store.ts').replace(
      /from '\.\/schema-migrations\.js'/,
      `from './schema-migrations.mjs'`,
    ),
  );
  writeFileSync(
    join(dir, 'kernel.mjs'),
    "export * from './schema-migrations.mjs';\nexport * from './sqlite-store.mjs';\n",
  );
  workerFile = join(dir, 'worker.mjs');
  writeFileSync(
    workerFile,
    `import { parentPort, workerData } from 'node:worker_threads';
import { createSqliteNonceStore } from './store.mjs';
const store = createSqliteNonceStore({ path: workerData.path, now: () => 0, busyTimeoutMs: 10000 });
const gate = new Int32Array(workerData.gate);
Atomics.add(gate, 1, 1);
Atomics.notify(gate, 1);
Atomics.wait(gate, 0, 0);
try {
  const verdict = await store.consume({ jti: workerData.jti, tenant: 'acme', exp: 2000000000, decision_id: 'd' });
  parentPort.postMessage(verdict);
} catch (err) {
  parentPort.postMessage('error:' + String(err));
} finally {
  await store.close();
}
`,
  );
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

async function race(jti: string, path: string): Promise<string[]> {
  const gate = new SharedArrayBuffer(8);
  const flags = new Int32Array(gate);
  const results: Promise<string>[] = [];
  for (let i = 0; i < WORKERS; i++) {
    const w = new Worker(workerFile, { workerData: { path, jti, gate } });
    results.push(
      new Promise<string>((res, rej) => {
        w.once('message', (m: string) => res(m));
        w.once('error', rej);
      }),
    );
  }
  // Release every worker at once after all have opened their own connection.
  while (Atomics.load(flags, 1) < WORKERS) {
    await new Promise<void>((r) => setImmediate(r));
  }
  Atomics.store(flags, 0, 1);
  Atomics.notify(flags, 0);
  return Promise.all(results);
}

describe('SQLite nonce store under cross-thread concurrency (scenario 6)', () => {
  it('lets exactly one of 32 workers with separate connections consume a jti', async () => {
    const path = join(dir, 'race.db');
    for (const jti of ['r1', 'r2', 'r3']) {
      const verdicts = await race(jti, path);
      expect(verdicts.filter((v) => v.startsWith('error:'))).toEqual([]);
      expect(verdicts.filter((v) => v === 'fresh')).toHaveLength(1);
      expect(verdicts.filter((v) => v === 'replayed')).toHaveLength(WORKERS - 1);
    }
  });
});
