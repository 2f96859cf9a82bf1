/**
 * `failclosed up --backend postgres://…` runs the embedded composition on PostgreSQL, recording the
 * backend on the first run (issue "one storage seam": `up --backend … (or config)`). It refuses a
 * backend other than the one the data directory runs on (`FAILCLOSED_BACKEND`, else the recorded
 * one): the same keys over a second store would fork the ledger; a `FAILCLOSED_BACKEND` naming
 * another store is refused by the ledger binding (docs/storage.md "One ledger per data
 * directory"). Options that say where a
 * server's state lives are refused by commands that would ignore them (docs/cli.md).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { EXIT, runCli } from '../../src/cli/run.js';
import { readConfig, startEmbedded } from '../../src/embedded/index.js';
import { useTestDatabase } from '../support/postgres.js';

const pg = useTestDatabase('fc_up_backend');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
// Backend resolution reads the process's environment: each case starts without the variable.
beforeEach(() => {
  vi.stubEnv('FAILCLOSED_BACKEND', undefined);
});
afterEach(() => {
  vi.unstubAllEnvs();
});

const freshDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'fc-up-backend-'));
  dirs.push(d);
  return join(d, 'data');
};

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

/** Runs a command expected to fail; its exit code and standard error. */
async function refused(...argv: string[]): Promise<{ code: number; err: string }> {
  let err = '';
  // Bounded: a command that serves instead of refusing stops after 15 s, and its exit 0 fails the test.
  const code = await runCli(argv, {
    out: () => undefined,
    err: (t) => (err += t),
    env: {},
    signal: AbortSignal.timeout(15_000),
  });
  return { code, err };
}

/** Entries of the data directory's ledger, on the backend it records. */
async function ledgerSize(dir: string): Promise<number> {
  const instance = await startEmbedded(dir, { port: 0 });
  try {
    return instance.core.ledger.size();
  } finally {
    await instance.close();
  }
}

describe('failclosed up --backend', () => {
  it('runs on PostgreSQL from the first run and records it, so a later plain up stays there', async () => {
    const dir = freshDir();
    const url = `${pg.url}?schema=up_backend`;
    const first = await upOnce(['--data', dir, '--backend', url]);
    expect(first.code).toBe(EXIT.ok);
    expect(first.out).toContain('(schema up_backend))');
    expect(JSON.parse(readFileSync(join(dir, 'failclosed.json'), 'utf8'))).toMatchObject({ backend: url });
    const again = await upOnce(['--data', dir]);
    expect(again.code).toBe(EXIT.ok);
    expect(again.out).toContain('(schema up_backend))');
  }, 120_000);

  it('refuses a --backend other than the one an existing data directory runs on, and starts nothing', async () => {
    const dir = freshDir();
    expect((await refused('init', dir)).code).toBe(EXIT.ok);
    const other = await refused('up', '--data', dir, '--port', '0', '--backend', `${pg.url}?schema=up_other`);
    expect(other.code).toBe(EXIT.usage);
    expect(other.err).toContain('is not the backend');
    expect(other.err).toContain('(sqlite)');
    expect(existsSync(join(dir, 'server.json'))).toBe(false);
    // The one it runs on, named again, is no refusal.
    const same = await upOnce(['--data', dir, '--backend', 'sqlite']);
    expect(same.code).toBe(EXIT.ok);
    expect(same.out).toContain('(storage: sqlite)');
  }, 120_000);

  it('compares with FAILCLOSED_BACKEND, not the file, when the variable is set', async () => {
    // A directory whose URL is kept out of its file: it runs on PostgreSQL through the variable.
    const url = `${pg.url}?schema=up_env`;
    vi.stubEnv('FAILCLOSED_BACKEND', url);
    const dir = freshDir();
    expect((await refused('init', dir)).code).toBe(EXIT.ok);
    expect(readConfig(dir).backend).toBeUndefined();
    // `--backend sqlite` would have run its keys over a new, empty SQLite ledger: a fork.
    const fork = await refused('up', '--data', dir, '--port', '0', '--backend', 'sqlite');
    expect(fork.code).toBe(EXIT.usage);
    expect(fork.err).toContain('from FAILCLOSED_BACKEND');
    expect(existsSync(join(dir, 'ledger.db'))).toBe(false);
    // The URL in use is accepted.
    const same = await upOnce(['--data', dir, '--backend', url]);
    expect(same.code).toBe(EXIT.ok);
    expect(same.out).toContain('(schema up_env))');
  }, 120_000);

  it('refuses FAILCLOSED_BACKEND naming another store than the ledger the directory signs (exit 1): no second ledger under its keys', async () => {
    const dir = freshDir();
    expect((await refused('init', dir)).code).toBe(EXIT.ok);
    // The variable is no flag: `up` cannot compare it with anything but the ledger itself.
    vi.stubEnv('FAILCLOSED_BACKEND', `${pg.url}?schema=up_fork`);
    const fork = await refused('up', '--data', dir, '--port', '0');
    expect(fork.code).toBe(EXIT.failed);
    expect(fork.err).toContain('holds no ledger, but the keys of');
    expect(fork.err).toContain('ledger-binding.json');
    expect(existsSync(join(dir, 'server.json'))).toBe(false);
    vi.stubEnv('FAILCLOSED_BACKEND', undefined);
    const own = await upOnce(['--data', dir]);
    expect(own.code).toBe(EXIT.ok);
    expect(own.out).toContain('(storage: sqlite)');
  }, 120_000);

  it('init --backend puts the first entries where it records the ledger, whatever FAILCLOSED_BACKEND says', async () => {
    vi.stubEnv('FAILCLOSED_BACKEND', 'sqlite');
    const dir = freshDir();
    const url = `${pg.url}?schema=up_init`;
    expect((await refused('init', dir, '--backend', url)).code).toBe(EXIT.ok);
    expect(existsSync(join(dir, 'ledger.db'))).toBe(false);
    vi.stubEnv('FAILCLOSED_BACKEND', undefined);
    // The demo policy's activation and the demo client's registration are on PostgreSQL.
    expect(await ledgerSize(dir)).toBeGreaterThan(0);
  }, 120_000);

  it('refuses a URL with a password (it would show in the command line), and --standby on PostgreSQL before making anything', async () => {
    const dir = freshDir();
    const withPassword = `${pg.url.replace('postgres://', 'postgres://u:pw-Zq81x@')}?schema=up_pw`;
    const pw = await refused('up', '--data', dir, '--port', '0', '--backend', withPassword);
    expect(pw.code).toBe(EXIT.usage);
    expect(pw.err).toContain('PGPASSWORD');
    expect(pw.err).not.toContain('pw-Zq81x');
    const standby = await refused('up', '--data', dir, '--standby', '--backend', `${pg.url}?schema=up_sb`);
    expect(standby.code).toBe(EXIT.failed);
    expect(standby.err).toContain('standby applies to SQLite only');
    expect(existsSync(dir)).toBe(false);
  });

  it('commands that would ignore --backend, --port, --grace or --standby refuse them (exit 2)', async () => {
    const dir = freshDir();
    const usage = async (...argv: string[]): Promise<string> => {
      const r = await refused(...argv);
      expect(r.code).toBe(EXIT.usage);
      return r.err;
    };
    expect(await usage('call', 'echo', '--params', '{}', '--backend', pg.url, '--data', dir)).toContain(
      'call takes no --backend',
    );
    expect(await usage('requests', 'show', 'r1', '--port', '7070', '--data', dir)).toContain(
      'requests takes no --port',
    );
    expect(await usage('serve', 'gate', '--config', join(dir, 'gate.json'), '--grace', '5')).toContain(
      'serve gate takes no --grace',
    );
    expect(await usage('init', dir, '--standby')).toContain('init takes no --standby');
    expect(await usage('serve', 'control-plane', '--data', dir, '--backend', pg.url)).toContain(
      'serve control-plane takes no --backend',
    );
    expect(existsSync(dir)).toBe(false);
  });

  it("commands that make no call refuse a call's options (exit 2): --gate, --wait, --request-id, --background, --token, --session", async () => {
    const dir = freshDir();
    const usage = async (...argv: string[]): Promise<string> => {
      const r = await refused(...argv, '--data', dir);
      expect(r.code).toBe(EXIT.usage);
      return r.err;
    };
    // `requests show --gate` would read --data's gate, not that one.
    expect(await usage('requests', 'show', 'r1', '--gate', 'https://127.0.0.1:1')).toContain(
      'requests takes no --gate',
    );
    expect(await usage('clients', 'list', '--wait', '5')).toContain('clients takes no --wait');
    expect(await usage('jobs', 'show', 'j1', '--request-id', 'r1')).toContain('jobs takes no --request-id');
    expect(await usage('mcp', '--background')).toContain('mcp takes no --background');
    expect(await usage('ledger', 'export', '--out', join(dir, 'x'), '--token', 't')).toContain(
      'ledger takes no --token',
    );
    expect(await usage('requests', 'show', 'r1', '--session', 's1')).toContain('requests takes no --session');
    expect(await usage('admin', 'kill-switch', 'on', '--session', 's1')).toContain(
      'admin takes no --session',
    );
    expect(existsSync(dir)).toBe(false);
  });
});
