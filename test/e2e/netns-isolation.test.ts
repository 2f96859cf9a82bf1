/**
 * FC-INV-6 on a real network topology: only the Gate reaches execution. Two network namespaces,
 * `gate` and `client`, joined by a veth pair in a private /30 (10.231.0.0/16, addresses that
 * exist only inside the namespaces this test makes). A real `failclosed up` runs inside the gate
 * namespace: the Gate's client listener on the gate's veth address, the Execution Layer's
 * listener on loopback at a fixed port, serving mutual TLS to the `gate` role only (`tls` and
 * `executor_url` in `failclosed.json`, certificates from `failclosed certs init`).
 *
 * From the client namespace a signed governed call through the Gate runs, while the execution
 * port is unreachable (nothing listens there on any address the client can reach). From inside
 * the gate namespace, on loopback, a `client`-role certificate and a self-signed `gate`
 * certificate are refused at TLS, recorded as `transport.refused`, and nothing runs.
 *
 * Needs root and `ip` (iproute2). Skipped with the reason when they are missing, unless CI is set,
 * in which case it runs and fails.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes, randomInt, webcrypto } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../support/paths.js';
import { dataPaths, DEMO_CLIENT } from '../../src/embedded/index.js';
import { issueCert, pkiPaths } from '../../src/transport/index.js';
import {
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  PemConverter,
  SubjectAlternativeNameExtension,
  X509CertificateGenerator,
} from '../../src/transport/x509.js';
import { ledgerEntries, until } from './processes.js';
import type { ExportedEntry } from './processes.js';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const GATE_PORT = 7070;
const EXECUTION_PORT = 7443;

function hasIp(): boolean {
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const inCi = (process.env.CI ?? '') !== '' && process.env.CI !== 'false';
const skipReason = inCi
  ? undefined
  : process.getuid?.() !== 0
    ? 'needs root to create network namespaces'
    : !hasIp()
      ? 'needs `ip` (iproute2)'
      : undefined;

/**
 * Run by `node` inside a namespace: `tcp` connects, `tls` posts to `/v1/execute` with the given
 * credentials, `call` makes a signed governed call with the project's client. Prints one JSON line.
 */
const PROBE = `
import { connect } from 'node:net';
import { request } from 'node:https';
import { readFileSync } from 'node:fs';
const [mode, arg] = process.argv.slice(2);
const o = JSON.parse(arg);
const done = (r) => { process.stdout.write(JSON.stringify(r) + '\\n'); process.exit(0); };
if (mode === 'tcp') {
  const s = connect({ host: o.host, port: o.port });
  s.setTimeout(3000);
  s.on('connect', () => { s.destroy(); done({ connected: true }); });
  s.on('timeout', () => { s.destroy(); done({ error: 'ETIMEDOUT' }); });
  s.on('error', (e) => done({ error: e.code ?? e.message }));
} else if (mode === 'tls') {
  const creds = { ca: readFileSync(o.ca) };
  if (o.cert) { creds.cert = readFileSync(o.cert); creds.key = readFileSync(o.key); }
  const req = request(o.url + '/v1/execute',
    { method: 'POST', ...creds, agent: false, timeout: 5000, headers: { 'content-type': 'application/json' } },
    (res) => { res.resume(); res.on('end', () => done({ status: res.statusCode })); });
  req.on('timeout', () => req.destroy(new Error('ETIMEDOUT')));
  req.on('error', (e) => done({ error: e.code ?? e.message }));
  req.end(JSON.stringify(o.body));
} else if (mode === 'call') {
  const { createClient } = await import(o.clientModule);
  const f = JSON.parse(readFileSync(o.clientFile, 'utf8'));
  const c = createClient({ url: o.url, identity: f.identity, tenant: f.tenant, key: f.key });
  done(await c.call(o.tool, o.params));
}
`;

interface ProbeResult {
  readonly connected?: boolean;
  readonly status?: number;
  readonly error?: string;
  readonly outcome?: string;
  readonly code?: string;
  readonly request_id?: string;
  readonly result?: unknown;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A self-signed certificate naming the `gate` role: the right name, but no chain to the CA. */
async function selfSignedGate(dir: string): Promise<{ cert: string; key: string }> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: '01' + randomBytes(15).toString('hex'),
      name: 'CN=gate, OU=gate, O=failclosed',
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 86_400_000),
      keys,
      signingAlgorithm: alg,
      extensions: [
        new ExtendedKeyUsageExtension([ExtendedKeyUsage.clientAuth, ExtendedKeyUsage.serverAuth]),
        new SubjectAlternativeNameExtension([{ type: 'url', value: 'urn:failclosed:role:gate' }]),
      ],
    },
    webcrypto,
  );
  const paths = { cert: join(dir, 'self-signed.pem'), key: join(dir, 'self-signed.key') };
  writeFileSync(paths.cert, `${cert.toString('pem')}\n`);
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  writeFileSync(paths.key, `${PemConverter.encode(pkcs8, 'PRIVATE KEY')}\n`, { mode: 0o600 });
  return paths;
}

describe.skipIf(skipReason !== undefined)(
  `network namespaces: only the Gate reaches the Execution Layer${skipReason === undefined ? '' : ` (skipped: ${skipReason})`}`,
  () => {
    const tag = randomBytes(3).toString('hex');
    const gateNs = `fc-gate-${tag}`;
    const clientNs = `fc-client-${tag}`;
    const subnet = `10.231.${randomInt(256)}`;
    const base = 4 * randomInt(64);
    const gateAddr = `${subnet}.${base + 1}`;
    const clientAddr = `${subnet}.${base + 2}`;
    const created: string[] = [];
    let work: string;
    let dir: string;
    let certs: string;
    let probe: string;
    let up: ChildProcess | undefined;
    let upOut = '';
    let exited: Promise<unknown> | undefined;

    /** Runs the probe in namespace `ns`. */
    function inNs(ns: string, mode: 'tcp' | 'tls' | 'call', arg: object): Promise<ProbeResult> {
      return new Promise((resolve, reject) => {
        execFile(
          'ip',
          ['netns', 'exec', ns, process.execPath, probe, mode, JSON.stringify(arg)],
          { timeout: 20_000, encoding: 'utf8' },
          (err, stdout, stderr) => {
            if (err !== null) reject(new Error(`probe ${mode} in ${ns}: ${err.message} ${stderr}`));
            else resolve(JSON.parse(stdout) as ProbeResult);
          },
        );
      });
    }

    const entries = (): ExportedEntry[] => ledgerEntries(dir);
    const receipts = (): ExportedEntry[] => entries().filter((e) => e.type === 'execution.receipt');
    const refusalReasons = (): Set<string> =>
      new Set(
        entries()
          .filter((e) => e.type === 'transport.refused')
          .map((e) => String(e.payload.reason)),
      );

    beforeAll(async () => {
      work = mkdtempSync(join(tmpdir(), 'fc-netns-'));
      dir = join(work, 'data');
      certs = join(work, 'certs');
      probe = join(work, 'probe.mjs');
      writeFileSync(probe, PROBE);

      // The topology: two namespaces, one veth pair, loopback up in both.
      for (const ns of [gateNs, clientNs]) {
        ip('netns', 'add', ns);
        created.push(ns);
        ip('-n', ns, 'link', 'set', 'lo', 'up');
      }
      ip(
        'link',
        'add',
        `fcg${tag}`,
        'netns',
        gateNs,
        'type',
        'veth',
        'peer',
        'name',
        `fcc${tag}`,
        'netns',
        clientNs,
      );
      ip('-n', gateNs, 'addr', 'add', `${gateAddr}/30`, 'dev', `fcg${tag}`);
      ip('-n', clientNs, 'addr', 'add', `${clientAddr}/30`, 'dev', `fcc${tag}`);
      ip('-n', gateNs, 'link', 'set', `fcg${tag}`, 'up');
      ip('-n', clientNs, 'link', 'set', `fcc${tag}`, 'up');

      // The deployment: `failclosed init` and `failclosed certs init` (at once: each takes seconds
      // on a loaded machine), a client certificate under the same CA, then the settings.
      await Promise.all(
        [
          ['init', dir],
          ['certs', 'init', '--dir', certs],
        ].map(
          (argv) =>
            new Promise<void>((resolve, reject) =>
              execFile(process.execPath, [CLI, ...argv], { timeout: 60_000 }, (err, _out, stderr) =>
                err === null ? resolve() : reject(new Error(`${argv.join(' ')}: ${stderr}`)),
              ),
            ),
        ),
      );
      await Promise.all([issueCert(certs, { role: 'client', name: 'agent-1' }), selfSignedGate(work)]);
      const config = JSON.parse(readFileSync(dataPaths(dir).config, 'utf8')) as Record<string, unknown>;
      writeFileSync(
        dataPaths(dir).config,
        JSON.stringify({
          ...config,
          host: gateAddr,
          port: GATE_PORT,
          execution_port: EXECUTION_PORT,
          executor_url: `https://127.0.0.1:${EXECUTION_PORT}`,
          tls: {
            ca: pkiPaths(certs).caCert,
            crl: pkiPaths(certs).crl,
            executor: { cert: pkiPaths(certs).cert('executor'), key: pkiPaths(certs).key('executor') },
            gate: { cert: pkiPaths(certs).cert('gate'), key: pkiPaths(certs).key('gate') },
          },
        }),
      );

      const child = spawn(
        'ip',
        ['netns', 'exec', gateNs, process.execPath, CLI, 'up', '--data', dir, '--grace', '1'],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      up = child;
      child.stdout.on('data', (d: Buffer) => (upOut += d.toString()));
      child.stderr.on('data', (d: Buffer) => (upOut += d.toString()));
      exited = new Promise((resolve) => child.once('exit', resolve));
      let gone = false;
      void exited.then(() => (gone = true));
      await until(
        () => {
          if (gone) throw new Error(`failclosed up exited: ${upOut}`);
          return /execution layer listening on/.test(upOut);
        },
        'failclosed up to listen in the gate namespace',
        30_000,
      );
    });

    afterAll(async () => {
      try {
        if (up !== undefined && up.exitCode === null && up.signalCode === null) {
          up.kill('SIGTERM');
          const timer = setTimeout(() => up?.kill('SIGKILL'), 10_000);
          await exited;
          clearTimeout(timer);
        }
      } finally {
        // Deleting a namespace deletes the veth end inside it, and with it the pair.
        for (const ns of created) {
          try {
            ip('netns', 'del', ns);
          } catch {
            // Already gone.
          }
        }
        if (work !== undefined) rmSync(work, { recursive: true, force: true });
      }
    });

    it('the gate listens on its veth address, the Execution Layer on loopback only', () => {
      expect(upOut).toContain(`failclosed gate listening on http://${gateAddr}:${GATE_PORT}`);
      expect(upOut).toContain(`execution layer listening on https://127.0.0.1:${EXECUTION_PORT}`);
    });

    it('from the client namespace a signed governed call through the Gate runs', async () => {
      const r = await inNs(clientNs, 'call', {
        clientModule: pathToFileURL(join(REPO_ROOT, 'dist', 'src', 'client', 'index.js')).href,
        clientFile: join(dataPaths(dir).clients, `${DEMO_CLIENT.identity}.json`),
        url: `http://${gateAddr}:${GATE_PORT}`,
        tool: 'echo',
        params: { message: 'across the veth' },
      });
      expect(r.outcome, JSON.stringify(r)).toBe('executed');
      const receipt = receipts().find((e) => e.request_id === r.request_id);
      expect(receipt).toBeDefined();
    });

    it('from the client namespace the execution port cannot be reached at all', async () => {
      // Positive control: inside the gate namespace, on loopback, something does listen there.
      expect(await inNs(gateNs, 'tcp', { host: '127.0.0.1', port: EXECUTION_PORT })).toEqual({
        connected: true,
      });
      // The Gate's own port is reachable from the client namespace, the execution port is not.
      expect(await inNs(clientNs, 'tcp', { host: gateAddr, port: GATE_PORT })).toEqual({ connected: true });
      expect(await inNs(clientNs, 'tcp', { host: gateAddr, port: EXECUTION_PORT })).toEqual({
        error: 'ECONNREFUSED',
      });
      // The client's own loopback is not the gate's.
      expect(await inNs(clientNs, 'tcp', { host: '127.0.0.1', port: EXECUTION_PORT })).toEqual({
        error: 'ECONNREFUSED',
      });
    });

    it('on the gate’s loopback a wrong certificate is refused at TLS and nothing runs', async () => {
      const url = `https://127.0.0.1:${EXECUTION_PORT}`;
      const ca = pkiPaths(certs).caCert;
      const body = {
        envelope: 'a.b.c',
        tool: 'echo',
        tenant: DEMO_CLIENT.tenant,
        params: { message: 'direct' },
      };
      const before = receipts().length;
      const attempts = {
        'client-role certificate': {
          cert: pkiPaths(certs).cert('agent-1'),
          key: pkiPaths(certs).key('agent-1'),
        },
        'self-signed gate certificate': {
          cert: join(work, 'self-signed.pem'),
          key: join(work, 'self-signed.key'),
        },
        'no certificate': {},
      };
      for (const [name, creds] of Object.entries(attempts)) {
        const r = await inNs(gateNs, 'tls', { url, ca, body, ...creds });
        expect(r.status, `${name}: ${JSON.stringify(r)}`).toBeUndefined();
        expect(r.error, name).toBeDefined();
      }
      // Control: the Gate's certificate passes TLS, and a forged envelope is then denied in HTTP.
      const gate = await inNs(gateNs, 'tls', {
        url,
        ca,
        body,
        cert: pkiPaths(certs).cert('gate'),
        key: pkiPaths(certs).key('gate'),
      });
      expect(gate.status, JSON.stringify(gate)).toBeGreaterThanOrEqual(400);

      await until(
        () => ['handshake', 'wrong_role'].every((r) => refusalReasons().has(r)),
        'transport.refused for the handshake and the wrong role',
      );
      const refused = entries().filter((e) => e.type === 'transport.refused');
      expect(refused.every((e) => e.payload.listener !== undefined)).toBe(true);
      expect(refused.find((e) => e.payload.reason === 'wrong_role')?.payload.peer_role).toBe('client');
      expect(receipts().length).toBe(before);
    });
  },
);
