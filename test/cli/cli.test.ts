/**
 * CLI smoke test (docs/cli.md): `init` into a temp dir, `up` on port 0 in-process, `call echo`
 * through the running server, operator commands, usage errors (exit 2) and denials (exit 1).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT, runCli } from '../../src/cli/run.js';
import type { CliIo } from '../../src/cli/run.js';

let dir: string;
let controller: AbortController;
let upDone: Promise<number>;

function capture(extra: Partial<CliIo> = {}): { io: CliIo; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    io: { out: (t) => (out += t), err: (t) => (err += t), env: {}, ...extra },
    out: () => out,
    err: () => err,
  };
}

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const c = capture();
  const code = await runCli([...argv, '--data', dir], c.io);
  return { code, out: c.out(), err: c.err() };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fc-cli-'));
  const init = capture();
  expect(await runCli(['init', dir], init.io)).toBe(EXIT.ok);
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
}, 60_000);

afterAll(async () => {
  controller.abort();
  expect(await upDone).toBe(EXIT.ok);
  expect(existsSync(join(dir, 'server.json'))).toBe(false);
  rmSync(dir, { recursive: true, force: true });
});

describe('failclosed CLI', () => {
  it('up announces the running server', () => {
    expect(existsSync(join(dir, 'server.json'))).toBe(true);
  });

  it('call echo executes through the running server and requests show finds it', async () => {
    const r = await run('call', 'echo', '--params', '{"message":"hi"}');
    expect(r.code).toBe(EXIT.ok);
    const result = JSON.parse(r.out) as { outcome: string; request_id: string };
    expect(result.outcome).toBe('executed');
    const shown = await run('requests', 'show', result.request_id);
    expect(shown.code).toBe(EXIT.ok);
    expect((JSON.parse(shown.out) as { outcome: string }).outcome).toBe('executed');
  });

  it('call --background queues the call and jobs show reads its outcome with the token (docs/jobs.md)', async () => {
    const q = await run('call', 'echo', '--params', '{"message":"bg"}', '--background');
    expect(q.code).toBe(EXIT.ok);
    const queued = JSON.parse(q.out) as { outcome: string; job: { id: string; token: string } };
    expect(queued.outcome).toBe('queued');
    const shown = await run('jobs', 'show', queued.job.id, '--token', queued.job.token, '--wait', '20');
    expect(shown.code).toBe(EXIT.ok);
    expect(JSON.parse(shown.out)).toMatchObject({ outcome: 'executed', result: { message: 'bg' } });
    const wrong = await run('jobs', 'show', queued.job.id, '--token', 'not-the-token');
    expect(wrong.code).toBe(EXIT.failed);
    expect(JSON.parse(wrong.out)).toMatchObject({ outcome: 'unknown', status: 404 });
    expect((await run('jobs', 'show', queued.job.id)).code).toBe(EXIT.usage);
  });

  it('a call whose answer is lost after the Gate ran it exits 4, never "denied", and requests show tells', async () => {
    // A network that carries the call to the running Gate and loses its answer (a proxy that cuts
    // the connection once the answer starts): the Gate runs the call; the client cannot know.
    const gate = new URL((JSON.parse(readFileSync(join(dir, 'server.json'), 'utf8')) as { url: string }).url);
    const proxy = createNetServer((inbound) => {
      const outbound = connect(Number(gate.port), gate.hostname);
      inbound.pipe(outbound);
      outbound.once('data', () => {
        inbound.destroy();
        outbound.destroy();
      });
      inbound.once('error', () => outbound.destroy());
      outbound.once('error', () => inbound.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      const r = await run('call', 'echo', '--params', '{"message":"lost"}', '--gate', url);
      // Before, exit 1 with a deny: the caller was told deny for a call that ran.
      expect(r.code).toBe(EXIT.unknown);
      const lost = JSON.parse(r.out) as { outcome: string; request_id: string };
      expect(lost.outcome).toBe('unknown');
      expect(r.err).toContain(`failclosed requests show ${lost.request_id}`);
      const shown = await run('requests', 'show', lost.request_id);
      expect(shown.code).toBe(EXIT.ok);
      expect((JSON.parse(shown.out) as { outcome: string }).outcome).toBe('executed');
    } finally {
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });

  it('a call sent where no Gate serves calls (a 404, as from a Control Plane process) says so, --background too', async () => {
    const server = createHttpServer((_req, res) => res.writeHead(404).end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      for (const background of [[], ['--background']]) {
        const r = await run('call', 'echo', '--params', '{"message":"x"}', '--gate', url, ...background);
        expect(r.code, background.join(' ')).toBe(EXIT.failed);
        // Before, the background call printed its deny with no word of where calls go.
        expect(r.err, background.join(' ')).toContain(
          'takes no calls (a Control Plane process?): send the call to a Gate with --gate URL',
        );
      }
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('a denied call exits 1', async () => {
    const r = await run('call', 'no_such_tool', '--params', '{}');
    expect(r.code).toBe(EXIT.failed);
    expect((JSON.parse(r.out) as { code: string }).code).toBe('ERR_TOOL_UNKNOWN');
  });

  it('identifiers that start with "-" are values, not options (base64url ids and kids can)', async () => {
    const r = await run('requests', 'show', '-Zx9_unknown');
    expect(r.code).toBe(EXIT.failed);
    expect(r.err).not.toContain('usage');
    // Also '-h…' and '--' with no lower-case name, as an option's value too (a kid did: before,
    // "Option '--kid' argument is ambiguous", a usage error about one enrolment in a thousand).
    for (const id of ['-hZx9_unknown', '--Zx9_unknown', '-_unknown']) {
      const shown = await run('requests', 'show', id);
      expect(shown.code, `${id}: ${shown.err}`).toBe(EXIT.failed);
      const confirm = await run('approvers', 'confirm', 'nobody', '--kid', id);
      expect(confirm.code, `${id}: ${confirm.err}`).toBe(EXIT.failed);
      expect(confirm.err).not.toContain('ambiguous');
    }
    expect((await run('requests', 'show', '--bogus')).code).toBe(EXIT.usage);
  });

  it('clients add registers a key, writes it 0600, and the new client can call', async () => {
    const r = await run('clients', 'add', 'ops-bot', '--tenant', 'acme');
    expect(r.code).toBe(EXIT.ok);
    expect(statSync(join(dir, 'clients', 'ops-bot.json')).mode & 0o777).toBe(0o600);
    const list = await run('clients', 'list');
    expect(list.out).toContain('ops-bot');
    const c = await run('call', 'echo', '--params', '{"message":"x"}', '--client', 'ops-bot');
    expect(c.code).toBe(EXIT.ok);
    expect((await run('clients', 'add', 'ops-bot', '--tenant', 'acme')).code).toBe(EXIT.failed);
  });

  it('kill switch on denies calls, off restores them (scenario 15)', async () => {
    expect((await run('admin', 'kill-switch', 'on')).code).toBe(EXIT.ok);
    const denied = await run('call', 'echo', '--params', '{"message":"x"}');
    expect(JSON.parse(denied.out)).toMatchObject({ code: 'ERR_KILL_SWITCH' });
    expect((await run('admin', 'kill-switch', 'off')).code).toBe(EXIT.ok);
    expect((await run('call', 'echo', '--params', '{"message":"y"}')).code).toBe(EXIT.ok);
  });

  it('admin quarantine client:NAME on|off and admin reset-breaker are accepted and ledgered', async () => {
    expect((await run('admin', 'quarantine', 'client:demo-agent', 'on')).code).toBe(EXIT.ok);
    const denied = await run('call', 'echo', '--params', '{"message":"q"}');
    expect(JSON.parse(denied.out)).toMatchObject({ code: 'ERR_SESSION_QUARANTINED' });
    expect((await run('admin', 'quarantine', 'client:demo-agent', 'off')).code).toBe(EXIT.ok);
    expect((await run('call', 'echo', '--params', '{"message":"q2"}')).code).toBe(EXIT.ok);
    const reset = await run('admin', 'reset-breaker', '--client', 'demo-agent', '--reason', 'drill');
    expect(reset.code).toBe(EXIT.ok);
    expect(JSON.parse(reset.out)).toMatchObject({ outcome: 'ok', scope: 'client', client: 'demo-agent' });
    expect((await run('admin', 'reset-breaker')).code).toBe(EXIT.failed);
  });

  it('jwks prints the issuer keys', async () => {
    const r = await run('jwks');
    expect(r.code).toBe(EXIT.ok);
    expect((JSON.parse(r.out) as { keys: unknown[] }).keys.length).toBeGreaterThan(0);
  });

  it('ledger export writes an audit bundle', async () => {
    const out = join(dir, 'audit.json');
    const r = await run('ledger', 'export', '--out', out);
    expect(r.code).toBe(EXIT.ok);
    expect(readFileSync(out, 'utf8').length).toBeGreaterThan(100);
  });

  it('usage errors exit 2', async () => {
    expect((await run('call', 'echo')).code).toBe(EXIT.usage);
    expect((await run('nonsense')).code).toBe(EXIT.usage);
    expect((await run('admin', 'kill-switch', 'maybe')).code).toBe(EXIT.usage);
    expect((await run('call', 'echo', '--params', '[1]')).code).toBe(EXIT.usage);
    expect((await run('--bogus')).code).toBe(EXIT.usage);
  });

  it('demo is registered and says it is not there yet', async () => {
    expect((await run('demo')).code).toBe(EXIT.failed);
  });
});
