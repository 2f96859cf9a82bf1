/**
 * `failclosed up --backend postgres://…` runs the embedded composition on PostgreSQL, recording the
 * backend on the first run (issue "one storage seam": `up --backend … (or config)`), and refuses a
 * backend other than the recorded one (the same keys over a second store would fork the ledger);
 * options that say where a server's state lives are refused by commands that would ignore them
 * (docs/cli.md).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EXIT, runCli } from '../../src/cli/run.js';
import { useTestDatabase } from '../support/postgres.js';

const pg = useTestDatabase('fc_up_backend');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Runs `up` with `argv` until it listens, then stops it; its output and exit code. */
async function upOnce(argv: string[]): Promise<{ code: number; out: string }> {
  const controller = new AbortController();
  let out = '';
  let listening!: () => void;
  const started = new Promise<void>((r) => (listening = r));
  const done = runCli(['up', '--port', '0', '--grace', '0', ...argv], {
    out: (t) => {
      out += t;
      if (out.includes('listening on')) listening();
    },
    err: (t) => (out += t),
    env: {},
    signal: controller.signal,
  });
  await Promise.race([started, done]);
  controller.abort();
  const code = await done;
  return { code, out };
}

describe('failclosed up --backend', () => {
  it('runs on PostgreSQL from the first run and records it, so a later plain up stays there', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fc-up-backend-'));
    dirs.push(dir);
    const url = `${pg.url}?schema=up_backend`;
    const first = await upOnce(['--data', dir, '--backend', url]);
    expect(first.code).toBe(EXIT.ok);
    expect(first.out).toContain('(schema up_backend))');
    expect(JSON.parse(readFileSync(join(dir, 'failclosed.json'), 'utf8'))).toMatchObject({ backend: url });
    const again = await upOnce(['--data', dir]);
    expect(again.code).toBe(EXIT.ok);
    expect(again.out).toContain('(schema up_backend))');
  }, 120_000);

  it('refuses a --backend other than the one an existing data directory records, and starts nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fc-up-backend-'));
    dirs.push(dir);
    const init = await runCli(['init', dir], { out: () => undefined, err: () => undefined, env: {} });
    expect(init).toBe(EXIT.ok);
    let err = '';
    const code = await runCli(
      [
        'up',
        '--data',
        dir,
        '--port',
        '0',
        '--backend',
        `${pg.url.replace('postgres://', 'postgres://u:pw-Zq81x@')}?schema=up_other`,
      ],
      { out: () => undefined, err: (t) => (err += t), env: {} },
    );
    expect(code).toBe(EXIT.usage);
    expect(err).toContain('is not the backend');
    expect(err).toContain('(sqlite)');
    // The password is never printed.
    expect(err).not.toContain('pw-Zq81x');
    expect(existsSync(join(dir, 'server.json'))).toBe(false);
    // The same backend, named again, is no refusal, and the flag wins over FAILCLOSED_BACKEND.
    process.env['FAILCLOSED_BACKEND'] = `${pg.url}?schema=up_env`;
    try {
      const same = await upOnce(['--data', dir, '--backend', 'sqlite']);
      expect(same.code).toBe(EXIT.ok);
      expect(same.out).toContain('(storage: sqlite)');
    } finally {
      delete process.env['FAILCLOSED_BACKEND'];
    }
  }, 120_000);

  it('commands that would ignore --backend, --port, --grace or --standby refuse them (exit 2)', async () => {
    const usage = async (...argv: string[]): Promise<string> => {
      let err = '';
      const code = await runCli(argv, { out: () => undefined, err: (t) => (err += t), env: {} });
      expect(code).toBe(EXIT.usage);
      return err;
    };
    const dir = '/nonexistent/fc-up-backend';
    expect(await usage('call', 'echo', '--params', '{}', '--backend', pg.url, '--data', dir)).toContain(
      'call takes no --backend',
    );
    expect(await usage('requests', 'show', 'r1', '--port', '7070', '--data', dir)).toContain(
      'requests takes no --port',
    );
    expect(await usage('serve', 'gate', '--config', '/nonexistent.json', '--grace', '5')).toContain(
      'serve gate takes no --grace',
    );
    expect(await usage('init', dir, '--standby')).toContain('init takes no --standby');
    expect(await usage('serve', 'control-plane', '--data', dir, '--backend', pg.url)).toContain(
      'serve control-plane takes no --backend',
    );
  });
});
