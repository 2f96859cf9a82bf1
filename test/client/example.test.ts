/**
 * The example project `examples/client-ts` works as a user would run it (issue 8 "House
 * upkeep": the TypeScript client usable on its own): copied out of the repository, with
 * `failclosed` linked the way `npm install` links its `file:../..` dependency, compiled strictly
 * by its own tsconfig, and run as its own process against a real embedded gate. It registers a
 * client with the operator client, one call runs and one is denied `ERR_POLICY_DENY`.
 * Uses `dist/` (`npm run build`, as `npm test` does first).
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initDataDir, startEmbedded } from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import { REPO_ROOT } from '../support/paths.js';

const run = promisify(execFile);
const EXAMPLE = join(REPO_ROOT, 'examples', 'client-ts');

let work: string;
let instance: EmbeddedInstance;
const runs = new Map<string, number>();

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fc-example-'));
  await initDataDir(join(work, 'data'));
  instance = await startEmbedded(join(work, 'data'), {
    port: 0,
    executionPort: 0,
    onToolRun: ({ tool }) => runs.set(tool, (runs.get(tool) ?? 0) + 1),
  });
}, 60_000);

afterAll(async () => {
  await instance?.close();
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

/** Copies the example and links its dependencies as `npm install` would (no registry needed). */
function installExample(): string {
  const project = join(work, 'client-ts');
  for (const f of ['package.json', 'tsconfig.json', 'README.md', 'src'])
    cpSync(join(EXAMPLE, f), join(project, f), { recursive: true });
  const modules = join(project, 'node_modules');
  mkdirSync(join(modules, '@types'), { recursive: true });
  symlinkSync(REPO_ROOT, join(modules, 'failclosed'), 'dir');
  symlinkSync(join(REPO_ROOT, 'node_modules', 'typescript'), join(modules, 'typescript'), 'dir');
  symlinkSync(join(REPO_ROOT, 'node_modules', '@types', 'node'), join(modules, '@types', 'node'), 'dir');
  return project;
}

describe('examples/client-ts', () => {
  it('builds on its own and registers a client, makes an allowed and a denied call', async () => {
    expect(existsSync(join(REPO_ROOT, 'dist', 'src', 'client', 'index.js')), 'run npm run build first').toBe(
      true,
    );
    const project = installExample();
    await run(process.execPath, [join(project, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project], {
      cwd: project,
    });
    const { stdout } = await run(process.execPath, [join(project, 'dist', 'main.js')], {
      cwd: project,
      env: { ...process.env, FAILCLOSED_URL: instance.url, FAILCLOSED_HOME: join(work, 'data') },
    });
    const lines = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l['label'])).toEqual(['register', 'allowed', 'denied', 'evidence']);
    expect(lines[0]).toMatchObject({ status: 201 });
    expect(lines[1]).toMatchObject({ outcome: 'executed', result: { message: 'hello from the example' } });
    expect(lines[2]).toMatchObject({ outcome: 'deny', code: 'ERR_POLICY_DENY' });
    expect(lines[3]).toMatchObject({ status: 200 });
    expect(runs.get('echo')).toBe(1);
    expect(runs.get('transfer_funds')).toBeUndefined();
    // The registration is the Gate's own record: the client is listed under the name the example chose.
    const listed = (await instance.core.state.listClients()).map((c) => c.identity);
    expect(listed).toContain(lines[0]!['client']);
  });
});
