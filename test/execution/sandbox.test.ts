/**
 * The bubblewrap sandbox, for real (SPEC §6 Shell and sandbox, OE-INV-012/024, OE-INV-006,
 * §7 scenario 17): host files and the network are out of reach, limits hold, and a sandbox that
 * cannot be established is a deny, never a bare run.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSandboxArgv, createBwrapSandbox } from '../../src/execution/index.js';
import { egressRuntimeDir, grantOverlaps, startEgressProxy } from '../../src/execution/sandbox/egress.js';
import type { SandboxExit, SandboxRequest } from '../../src/execution/index.js';
import type { Deny } from '../../src/kernel/index.js';
import { REPO_ROOT } from '../support/paths.js';
import { constraints } from './support.js';

const sandbox = createBwrapSandbox();
const BASH = '/usr/bin/bash';

function run(argv: string[], over: Partial<SandboxRequest> = {}): Promise<SandboxExit | Deny> {
  return sandbox.run({ argv, constraints: constraints(), signal: new AbortController().signal, ...over });
}

function exited(r: SandboxExit | Deny): SandboxExit {
  if (r.outcome !== 'exited') throw new Error(`expected exit, got ${r.code}`);
  return r;
}

let server: Server;
let port = 0;
let dir: string;

beforeAll(async () => {
  // Not under tmpdir(): grants there are refused (the egress proxies' sockets live there).
  dir = mkdtempSync('/var/tmp/fc-sandbox-');
  server = createServer((s) => s.end('hello\n'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await new Promise<void>((r) => server.close(() => r()));
});

describe('bwrap sandbox: availability', () => {
  it('probes successfully on this host', async () => {
    expect(await sandbox.probe()).toEqual({ outcome: 'ok' });
  });

  it('denies ERR_SANDBOX_UNAVAILABLE when bwrap is missing (probe and run)', async () => {
    const broken = createBwrapSandbox({ bwrapPath: '/nonexistent/bwrap' });
    expect(await broken.probe()).toMatchObject({ outcome: 'deny', code: 'ERR_SANDBOX_UNAVAILABLE' });
    const r = await broken.run({
      argv: ['/usr/bin/true'],
      constraints: constraints(),
      signal: new AbortController().signal,
    });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_SANDBOX_UNAVAILABLE' });
  });

  it('denies ERR_SANDBOX_UNAVAILABLE when bwrap cannot set the sandbox up', async () => {
    // A granted path that does not exist makes bwrap fail before the tool starts.
    const r = await run(['/usr/bin/true'], {
      constraints: constraints({ fs_read: ['/nonexistent/granted'] }),
    });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_SANDBOX_UNAVAILABLE' });
  });

  it('denies network without an egress allowlist: the host network is never shared (OE-INV-011)', async () => {
    const r = await run(['/usr/bin/true'], { constraints: constraints({ network: true }) });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_SANDBOX_UNAVAILABLE' });
  });

  it('refuses relative or unnormalized granted paths', () => {
    for (const p of ['relative', '/a/../etc', '/', '/tmp/']) {
      expect(buildSandboxArgv(['/usr/bin/true'], constraints({ fs_read: [p] }))).toMatchObject({
        outcome: 'deny',
        code: 'ERR_SANDBOX_UNAVAILABLE',
      });
    }
  });
});

describe('bwrap sandbox: isolation (scenario 17)', () => {
  it('runs unprivileged with no capabilities', async () => {
    const r = exited(await run([BASH, '-c', 'id -u; grep CapEff /proc/self/status']));
    expect(r.stdout.toString()).toMatch(/^65534\nCapEff:\s+0000000000000000\n$/);
  });

  it('cannot read /etc/shadow (the host can)', async () => {
    expect(readFileSync('/etc/shadow').length).toBeGreaterThan(0);
    const r = exited(await run(['/usr/bin/cat', '/etc/shadow']));
    expect(r.exit_code).not.toBe(0);
    expect(r.stdout.length).toBe(0);
  });

  it('cannot see the repository, the data directories or $HOME', async () => {
    const probe = join(REPO_ROOT, 'package.json');
    expect(readFileSync(probe).length).toBeGreaterThan(0);
    for (const p of [probe, REPO_ROOT, homedir(), '/root', '/home', dir]) {
      const r = exited(await run(['/usr/bin/ls', '-la', p]));
      expect(r.exit_code, p).not.toBe(0);
    }
  });

  it('does not inherit the host environment (FC_SECRET_* stays outside)', async () => {
    process.env.FC_SECRET_SANDBOX_TEST = 'must-not-leak';
    try {
      const r = exited(await run(['/usr/bin/env']));
      expect(r.stdout.toString()).not.toContain('must-not-leak');
    } finally {
      delete process.env.FC_SECRET_SANDBOX_TEST;
    }
  });

  it('cannot open a TCP connection to 127.0.0.1 (PostgreSQL port or a live host server)', async () => {
    for (const p of [5432, port]) {
      const r = exited(await run([BASH, '-c', `exec 3<>/dev/tcp/127.0.0.1/${p} && cat <&3`]));
      expect(r.exit_code, String(p)).not.toBe(0);
      expect(r.stdout.toString()).not.toContain('hello');
    }
  });

  it('reaches a host server only through the egress proxy when it is listed (positive control)', async () => {
    // On a sandbox that shared the host network, a tool granted network reached every loopback
    // service; now it reaches only what its allowlist names, and only through the proxy.
    const direct = exited(
      await run([BASH, '-c', `exec 3<>/dev/tcp/127.0.0.1/${port} && cat <&3`], {
        constraints: constraints({ network: true, egress: [`127.0.0.1:${port}`] }),
      }),
    );
    expect(direct.exit_code).not.toBe(0);
    expect(direct.stdout.toString()).not.toContain('hello');
    const proxied = exited(
      await run(
        [
          BASH,
          '-c',
          `exec 3<>/dev/tcp/127.0.0.1/3128; printf 'CONNECT 127.0.0.1:${port} HTTP/1.1\\r\\n\\r\\n' >&3; cat <&3`,
        ],
        { constraints: constraints({ network: true, egress: [`127.0.0.1:${port}`] }) },
      ),
    );
    expect(proxied.stdout.toString()).toBe('HTTP/1.1 200 Connection Established\r\n\r\nhello\n');
    expect(
      await run(
        [
          BASH,
          '-c',
          `exec 3<>/dev/tcp/127.0.0.1/3128; printf 'CONNECT 127.0.0.1:5432 HTTP/1.1\\r\\n\\r\\n' >&3; cat <&3`,
        ],
        {
          constraints: constraints({ network: true, egress: [`127.0.0.1:${port}`] }),
        },
      ),
    ).toMatchObject({ outcome: 'deny', code: 'ERR_EGRESS_DENIED' });
  });

  it('binds fs_read read-only and fs_write read-write', async () => {
    const ro = join(dir, 'ro');
    const rw = join(dir, 'rw');
    writeFileSync(ro, 'readable');
    writeFileSync(rw, '');
    const c = constraints({ fs_read: [ro], fs_write: [rw] });
    expect(exited(await run(['/usr/bin/cat', ro], { constraints: c })).stdout.toString()).toBe('readable');
    expect(exited(await run([BASH, '-c', `echo x > ${ro}`], { constraints: c })).exit_code).not.toBe(0);
    expect(exited(await run([BASH, '-c', `echo written > ${rw}`], { constraints: c })).exit_code).toBe(0);
    expect(readFileSync(rw, 'utf8')).toBe('written\n');
    expect(readFileSync(ro, 'utf8')).toBe('readable');
  });

  it('refuses grants over the temporary or egress runtime directory: no reaching another call’s proxy (OE-INV-011)', async () => {
    let hits = 0;
    const upstream = createServer((s) => {
      hits += 1;
      s.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const up = (upstream.address() as { port: number }).port;
    // Call A: network to `up`, its proxy listening while call B runs.
    const a = await startEgressProxy({ allow: [`127.0.0.1:${up}`], onDenial: () => undefined });
    // Call B: no network, but a grant that would expose A's socket; it tries every proxy.sock.
    const script = `const fs=require('fs'),http=require('http'),path=require('path');
      const found=[];const walk=(d,n)=>{let es=[];try{es=fs.readdirSync(d,{withFileTypes:true})}catch{return}
        for(const e of es){const p=path.join(d,e.name);if(e.name==='proxy.sock')found.push(p);else if(e.isDirectory()&&n>0)walk(p,n-1)}};
      for(const g of process.argv.slice(1))walk(g,3);
      let left=found.length;if(left===0)process.exit(0);
      for(const s of found){const q=http.get({socketPath:s,path:'http://127.0.0.1:${up}/'},(r)=>{r.resume();if(--left===0)process.exit(0)});q.on('error',()=>{if(--left===0)process.exit(0)})}`;
    try {
      for (const grant of [
        tmpdir(),
        egressRuntimeDir(),
        a.socketDir,
        dirname(tmpdir()) === '/' ? tmpdir() : dirname(tmpdir()),
      ]) {
        for (const key of ['fs_read', 'fs_write'] as const) {
          const r = await run(['/usr/bin/node', '-e', script, grant], {
            constraints: constraints({ [key]: [grant], timeout_ms: 10_000 }),
          });
          expect(r, `${key} ${grant}`).toMatchObject({ outcome: 'deny', code: 'ERR_SANDBOX_UNAVAILABLE' });
        }
      }
      expect(hits).toBe(0);
    } finally {
      await a.close();
      await new Promise<void>((r) => upstream.close(() => r()));
    }
  });

  it('refuses a granted path that is or passes through a symbolic link: a tool cannot plant one for the next call to bind the host', async () => {
    // Tool W may write the shared directory; tool R may read a directory inside it.
    const shared = join(dir, 'shared');
    const sub = join(shared, 'sub');
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, 'ok'), 'inside');
    const w = constraints({ fs_write: [shared] });
    const r = constraints({ fs_read: [sub] });
    expect(exited(await run(['/usr/bin/ls', sub], { constraints: r })).stdout.toString()).toBe('ok\n');
    // W replaces `sub` with a link to the host's root (its write lands on the host).
    expect(
      exited(await run([BASH, '-c', `rm -r ${sub} && ln -s / ${sub}`], { constraints: w })).exit_code,
    ).toBe(0);
    const planted = await run(['/usr/bin/ls', sub], { constraints: r });
    expect(planted).toMatchObject({ outcome: 'deny', code: 'ERR_SANDBOX_UNAVAILABLE' });
    // A link further up the path is refused the same way, and so is a path that is missing.
    const via = join(dir, 'via');
    symlinkSync(shared, via);
    expect(
      await run(['/usr/bin/true'], { constraints: constraints({ fs_read: [join(via, 'x')] }) }),
    ).toMatchObject({
      outcome: 'deny',
      code: 'ERR_SANDBOX_UNAVAILABLE',
    });
    expect(await run(['/usr/bin/true'], { constraints: constraints({ fs_write: [via] }) })).toMatchObject({
      outcome: 'deny',
      code: 'ERR_SANDBOX_UNAVAILABLE',
    });
    expect(
      await run(['/usr/bin/true'], { constraints: constraints({ fs_read: [join(dir, 'missing')] }) }),
    ).toMatchObject({ outcome: 'deny', code: 'ERR_SANDBOX_UNAVAILABLE' });
    // The profile binds each grant by its descriptor, never by its name again.
    rmSync(sub);
    mkdirSync(sub);
    const argv = buildSandboxArgv(['/usr/bin/true'], r, {}, undefined, [sub]);
    expect(argv).toMatchObject({ outcome: 'ok' });
    expect(argv.outcome === 'ok' && argv.argv.join(' ')).toContain(`--ro-bind-fd 4 ${sub}`);
    expect(grantOverlaps('/', egressRuntimeDir())).toBe(true);
  });

  it('has a writable private /tmp work directory and a read-only /usr', async () => {
    const r = exited(await run([BASH, '-c', 'pwd; echo a > f && cat f; touch /usr/x || echo ro']));
    expect(r.stdout.toString()).toBe('/tmp/work\na\nro\n');
  });
});

describe('bwrap sandbox: limits', () => {
  it('kills the process group at the wall-clock limit → ERR_TOOL_TIMEOUT', async () => {
    const r = await run([BASH, '-c', 'sleep 30 & sleep 30'], {
      constraints: constraints({ timeout_ms: 300 }),
    });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_TIMEOUT' });
  });

  it('kills on abort → ERR_TOOL_TIMEOUT', async () => {
    const controller = new AbortController();
    const pending = run(['/usr/bin/sleep', '30'], { signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    expect(await pending).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_TIMEOUT' });
  });

  it('an abort while the egress proxy is set up (before the tool is spawned) → killed, ERR_TOOL_TIMEOUT', async () => {
    const controller = new AbortController();
    const pending = run(['/usr/bin/bash', '-c', 'sleep 2; echo ran'], {
      signal: controller.signal,
      constraints: constraints({ network: true, egress: ['127.0.0.1:9'] }),
    });
    // The proxy's setup is real I/O: the abort lands before the spawn.
    controller.abort();
    expect(await pending).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_TIMEOUT' });
  });

  it('kills past the output cap → ERR_TOOL_OUTPUT_LIMIT', async () => {
    const r = await run(['/usr/bin/yes'], { constraints: constraints({ max_output_bytes: 10_000 }) });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_OUTPUT_LIMIT' });
  });

  it('enforces the address-space limit', async () => {
    const small = constraints({ memory_bytes: 64 * 1024 * 1024 });
    const r = exited(
      await run([BASH, '-c', 'ulimit -v; x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived'], {
        constraints: small,
      }),
    );
    expect(r.stdout.toString().split('\n')[0]).toBe(String(64 * 1024));
    expect(r.stdout.toString()).not.toContain('survived');
  });

  it('runs the same allocation within a larger limit (control)', async () => {
    // Bash builds the 100 MB string slowly on a busy machine: the wall-clock limit is not under test here.
    const big = constraints({ memory_bytes: 1024 * 1024 * 1024, timeout_ms: 30_000 });
    const r = exited(
      await run([BASH, '-c', 'x=$(head -c 100000000 /dev/zero | tr "\\0" a); echo survived'], {
        constraints: big,
      }),
    );
    expect(r.stdout.toString()).toBe('survived\n');
  });

  it('limits processes, file size and core dumps', async () => {
    const r = exited(await run([BASH, '-c', 'ulimit -u; ulimit -f; ulimit -c']));
    expect(r.stdout.toString()).toBe(`64\n${(64 * 1024 * 1024) / 1024}\n0\n`);
  });

  it('passes extra environment but refuses loader and PATH overrides', async () => {
    const ok = exited(await run(['/usr/bin/printenv', 'TOOL_TOKEN'], { env: { TOOL_TOKEN: 'abc' } }));
    expect(ok.stdout.toString()).toBe('abc\n');
    for (const env of [{ LD_PRELOAD: '/tmp/x.so' }, { PATH: '/tmp' }, { 'bad-name': 'x' }]) {
      expect(await run(['/usr/bin/true'], { env })).toMatchObject({
        outcome: 'deny',
        code: 'ERR_ADAPTER_UNAVAILABLE',
      });
    }
  });
});
