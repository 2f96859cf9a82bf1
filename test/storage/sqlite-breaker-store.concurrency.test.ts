/**
 * The SQLite breaker store under cross-thread concurrency (OE-INV-021): workers in separate
 * threads, each with its own connection to one file (as Control Plane processes on one host),
 * admit and reserve at once; no count is lost or answered twice and the spend limit holds.
 *
 * The workers load the real `src/storage/sqlite/breaker-store.ts` and the modules it imports,
 * transpiled on the fly, so the statements under test are the shipped ones.
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

const WORKERS = 8;
const ROUNDS = 25;
let dir: string;
let workerFile: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'fc-breaker-race-'));
  const transpile = (file: string): string =>
    ts.transpileModule(readFileSync(resolve(REPO_ROOT, file), 'utf8'), {
      compilerOptions: {
        module: ts.ModuleKind.ESNext,
        target: ts.ScriptTarget.ES2022,
        verbatimModuleSyntax: true,
      },
    }).outputText;
  const sqliteUrl = pathToFileURL(createRequire(import.meta.url).resolve('better-sqlite3')).href;
  const store = transpile('src/storage/sqlite/breaker-store.ts')
    .replace(/from 'better-sqlite3'/, `from '${sqliteUrl}'`)
    .replace(/from '\.\.\/breaker-rows\.js'/, `from './breaker-rows.mjs'`)
    .replace(/from '\.\.\/postgres\/rows\.js'/, `from './rows.mjs'`)
    .replace(/from '\.\.\/\.\.\/kernel\/index\.js'/, `from './kernel.mjs'`)
    // Of the Control Plane, only the breaker store's prune bounds (its file imports types only).
    .replace(/from '\.\.\/\.\.\/control-plane\/index\.js'/, `from './control-plane-breaker-store.mjs'`);
  expect(store).toContain(sqliteUrl);
  expect(store).toContain('./kernel.mjs');
  expect(store).toContain('./breaker-rows.mjs');
  expect(store).toContain('./rows.mjs');
  expect(store).toContain('./control-plane-breaker-store.mjs');
  const cpStore = transpile('src/control-plane/breaker-store.ts');
  expect(cpStore).not.toMatch(/^import /m);
  writeFileSync(join(dir, 'control-plane-breaker-store.mjs'), cpStore);
  const breakerRows = transpile('src/storage/breaker-rows.ts');
  // Type-only imports are erased: the workers load nothing else.
  expect(breakerRows).not.toMatch(/^import /m);
  writeFileSync(join(dir, 'store.mjs'), store);
  writeFileSync(join(dir, 'breaker-rows.mjs'), breakerRows);
  writeFileSync(join(dir, 'rows.mjs'), transpile('src/storage/postgres/rows.ts'));
  const schema = transpile('src/kernel/schema-migrations.ts');
  expect(schema).not.toMatch(/^import /m);
  writeFileSync(join(dir, 'schema-migrations.mjs'), schema);
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
import { createSqliteBreakerStore } from './store.mjs';
const store = createSqliteBreakerStore(workerData.path, { busyTimeoutMs: 20000 });
const gate = new Int32Array(workerData.gate);
Atomics.add(gate, 1, 1);
Atomics.notify(gate, 1);
Atomics.wait(gate, 0, 0);
try {
  const out = [];
  for (let i = 0; i < workerData.rounds; i++) {
    const c = await store.admit({ principal: 'p', tenant: 't', call: 'echo\\u0000h', now: 100, windowMs: 1000 });
    const granted = await store.reserveSpend('t', 9, 3, workerData.limit);
    out.push([c.total, c.inSession, c.inTenant, c.sameCall, granted]);
  }
  parentPort.postMessage(out);
} catch (err) {
  parentPort.postMessage('error:' + String(err));
} finally {
  store.close();
}
`,
  );
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

type Round = [number, number, number, number, boolean];

async function race(path: string, limit: number): Promise<Round[][]> {
  const gate = new SharedArrayBuffer(8);
  const flags = new Int32Array(gate);
  const workers: Worker[] = [];
  const results: Promise<Round[]>[] = [];
  // A worker that fails before it counts itself in (its store did not open) ends the wait below
  // with its error, instead of leaving it waiting for a count that never comes.
  let failed: Error | undefined;
  for (let i = 0; i < WORKERS; i++) {
    const w = new Worker(workerFile, { workerData: { path, gate, rounds: ROUNDS, limit } });
    workers.push(w);
    results.push(
      new Promise((res, rej) => {
        const fail = (err: Error): void => {
          failed ??= err;
          rej(err);
        };
        let answered = false;
        w.once('message', (m: Round[] | string) => {
          answered = true;
          if (typeof m === 'string') fail(new Error(m));
          else res(m);
        });
        w.once('error', fail);
        w.once('exit', (code) => {
          if (!answered) fail(new Error(`worker exited (${code}) without an answer`));
        });
      }),
    );
  }
  // Settled promises ignore later calls; none is left unhandled while the loop below runs.
  for (const r of results) r.catch(() => undefined);
  // Release every worker at once after all have opened their own connection.
  while (Atomics.load(flags, 1) < WORKERS && failed === undefined) {
    await new Promise<void>((r) => setImmediate(r));
  }
  if (failed !== undefined) {
    await Promise.all(workers.map((w) => w.terminate()));
    throw failed;
  }
  Atomics.store(flags, 0, 1);
  Atomics.notify(flags, 0);
  return Promise.all(results);
}

describe('SQLite breaker store under cross-thread concurrency (OE-INV-021)', () => {
  it(`${WORKERS} workers with separate connections: every count answered once, the spend limit exactly filled`, async () => {
    const limit = 3 * 37;
    const rounds = (await race(join(dir, 'race.db'), limit)).flat();
    const n = WORKERS * ROUNDS;
    const upTo = Array.from({ length: n }, (_, i) => i + 1);
    for (const col of [0, 1, 2, 3] as const)
      expect(rounds.map((r) => r[col]).sort((x, y) => x - y)).toEqual(upTo);
    expect(rounds.filter((r) => r[4])).toHaveLength(37);
  });
});
