/**
 * `failclosed operators` and `--operator NAME` (docs/cli.md, OE-INV-025): a person added with a
 * tenant scope gets a token file 0600 in their own place (`$XDG_CONFIG_HOME/failclosed/operators`),
 * never printed; commands run as that person are ledgered with their name; a scoped person is
 * refused a global action (exit 1, ERR_FORBIDDEN); `operators rotate` replaces the file's token and
 * the old one is refused; `admin rotate-operator-token` rewrites the data directory's token;
 * `operators bind|unbind` and `add --oidc-subject` are refused without `console.oidc` (bound
 * sign-in itself: test/console/operator-oidc.test.ts).
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT, runCli } from '../../src/cli/run.js';
import { readOperatorToken } from '../../src/embedded/index.js';

let dir: string;
let home: string;
let controller: AbortController;
let upDone: Promise<number>;
let url: string;

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli([...argv, '--data', dir], {
    out: (t) => (out += t),
    err: (t) => (err += t),
    env: { XDG_CONFIG_HOME: home },
  });
  return { code, out, err };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fc-cli-ops-'));
  home = mkdtempSync(join(tmpdir(), 'fc-cli-ops-home-'));
  expect(await runCli(['init', dir], { out: () => undefined, err: () => undefined, env: {} })).toBe(EXIT.ok);
  controller = new AbortController();
  let listening!: () => void;
  const started = new Promise<void>((r) => (listening = r));
  let out = '';
  upDone = runCli(['up', '--data', dir, '--port', '0'], {
    out: (t) => {
      out += t;
      if (out.includes('listening on')) listening();
    },
    err: () => undefined,
    env: {},
    signal: controller.signal,
  });
  await Promise.race([started, upDone]);
  url = JSON.parse(readFileSync(join(dir, 'server.json'), 'utf8')).url as string;
}, 60_000);

afterAll(async () => {
  controller.abort();
  await upDone;
  rmSync(dir, { recursive: true, force: true });
  rmSync(home, { recursive: true, force: true });
});

const tokenFile = (name: string): string => join(home, 'failclosed', 'operators', `${name}.token`);

async function status(token: string): Promise<number> {
  const res = await fetch(new URL('/v1/admin/clients-list', url), {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
  });
  await res.arrayBuffer();
  return res.status;
}

describe('failclosed operators (OE-INV-025)', () => {
  it('operators add writes the token 0600 in the person’s own place and never prints it', async () => {
    const r = await run('operators', 'add', 'alice', '--tenant', 'acme');
    expect(r.code).toBe(EXIT.ok);
    const token = readFileSync(tokenFile('alice'), 'utf8').trim();
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(statSync(tokenFile('alice')).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, 'failclosed', 'operators')).mode & 0o777).toBe(0o700);
    expect(r.out).not.toContain(token);
    expect(JSON.parse(r.out)).toMatchObject({
      name: 'alice',
      tenants: ['acme'],
      token_file: tokenFile('alice'),
    });
    // A second add is refused before anything changes: the file is someone's token.
    expect((await run('operators', 'add', 'alice', '--tenant', 'acme')).code).toBe(EXIT.failed);
    const listed = await run('operators', 'list');
    expect(listed.code).toBe(EXIT.ok);
    expect(listed.out).toContain('alice');
    expect(listed.out).not.toContain(token);
  });

  it('--operator NAME acts as the person: in scope it is done, a global action is refused ERR_FORBIDDEN', async () => {
    expect((await run('admin', 'lockdown', 'acme', 'off', '--operator', 'alice')).code).toBe(EXIT.ok);
    const killed = await run('admin', 'kill-switch', 'on', '--operator', 'alice');
    expect(killed.code).toBe(EXIT.failed);
    expect(killed.err).toContain('ERR_FORBIDDEN');
    // $FAILCLOSED_OPERATOR names the person as well.
    let err = '';
    const viaEnv = await runCli(['admin', 'kill-switch', 'on', '--data', dir], {
      out: () => undefined,
      err: (t) => (err += t),
      env: { XDG_CONFIG_HOME: home, FAILCLOSED_OPERATOR: 'alice' },
    });
    expect(viaEnv).toBe(EXIT.failed);
    expect(err).toContain('ERR_FORBIDDEN');
    const unknown = await run('clients', 'list', '--operator', 'nobody');
    expect(unknown.code).toBe(EXIT.failed);
    expect(unknown.err).toContain('no operator token for nobody');
  });

  it('operators rotate replaces the token file; the old token is refused at once', async () => {
    const old = readFileSync(tokenFile('alice'), 'utf8').trim();
    const r = await run('operators', 'rotate', 'alice', '--operator', 'alice');
    expect(r.code).toBe(EXIT.ok);
    const next = readFileSync(tokenFile('alice'), 'utf8').trim();
    expect(next).not.toBe(old);
    expect(statSync(tokenFile('alice')).mode & 0o777).toBe(0o600);
    expect(await status(old)).toBe(401);
    expect(await status(next)).toBe(200);
  });

  it('admin rotate-operator-token rewrites DATA/operator.token; the old bootstrap token is refused', async () => {
    const old = readOperatorToken(dir);
    const r = await run('admin', 'rotate-operator-token');
    expect(r.code).toBe(EXIT.ok);
    const next = readOperatorToken(dir);
    expect(next).not.toBe(old);
    expect(r.out).not.toContain(next);
    expect(statSync(join(dir, 'operator.token')).mode & 0o777).toBe(0o600);
    expect(await status(old)).toBe(401);
    expect(await status(next)).toBe(200);
  });

  it('operators remove: the person’s token is refused from then on', async () => {
    const token = readFileSync(tokenFile('alice'), 'utf8').trim();
    expect((await run('operators', 'remove', 'alice')).code).toBe(EXIT.ok);
    expect(await status(token)).toBe(401);
  });

  it('usage errors exit 2', async () => {
    expect((await run('operators', 'add', 'bob')).code).toBe(EXIT.usage);
    expect((await run('operators', 'add', 'bob', '--tenant', 'acme', '--all-tenants')).code).toBe(EXIT.usage);
    expect((await run('operators', 'frobnicate', 'bob')).code).toBe(EXIT.usage);
    expect((await run('operators', 'bind', 'bob')).code).toBe(EXIT.usage);
  });

  it('operators bind without console.oidc is refused and nothing is bound; the token still works', async () => {
    expect((await run('operators', 'add', 'carol', '--tenant', 'acme')).code).toBe(EXIT.ok);
    const bound = await run('operators', 'bind', 'carol', 'carol-sub');
    expect(bound.code).toBe(EXIT.failed);
    expect(bound.err).toContain('ERR_REQUEST_MALFORMED');
    const added = await run('operators', 'add', 'dave', '--tenant', 'acme', '--oidc-subject', 'dave-sub');
    expect(added.code).toBe(EXIT.failed);
    expect(added.err).toContain('ERR_REQUEST_MALFORMED');
    const unbound = await run('operators', 'unbind', 'carol');
    expect(unbound.code).toBe(EXIT.failed);
    const listed = JSON.parse((await run('operators', 'list')).out) as {
      operators: { name: string; oidc: unknown }[];
    };
    expect(listed.operators.find((o) => o.name === 'carol')?.oidc).toBeNull();
    expect(listed.operators.some((o) => o.name === 'dave')).toBe(false);
    expect(await status(readFileSync(tokenFile('carol'), 'utf8').trim())).toBe(200);
  });
});
