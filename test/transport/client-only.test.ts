/**
 * A certificate only to connect out with (FC-INV-6, L7 mutual TLS): a keyless Gate's `gate`
 * certificate names no host and has `clientAuth` alone, so that whoever holds it cannot serve
 * under any name, even to a peer that accepted a `gate` server (none does: the Control Plane's
 * internal listener is accepted by its `control-plane` role, see own-role.test.ts). Over real TLS
 * sockets: a server presenting it is refused by the
 * product's Agent for every host; a server certificate that names no host in its subject
 * alternative names is refused even where its common name spells the host (no fallback to the
 * common name); an Agent marked client-only refuses such a certificate of its own, at start and
 * at reload; and `failclosed certs issue --no-host` issues one.
 */
import { webcrypto, X509Certificate as NodeX509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  PemConverter,
  SubjectAlternativeNameExtension,
  X509Certificate,
  X509CertificateGenerator,
} from '../../src/transport/x509.js';
import {
  assertNamesNoHost,
  createDevCa,
  createMtlsAgent,
  createMtlsServer,
  issueCert,
  pkiPaths,
  serverNamesOf,
} from '../../src/transport/index.js';
import type { MtlsServer, TlsFiles } from '../../src/transport/index.js';
import { CertsUsageError, runCertsCli } from '../../src/cli/certs.js';
import { getWho, pkiFiles } from '../support/mtls.js';

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

describe('a client-only certificate cannot serve', () => {
  let root: string;
  let pki: string;
  const servers: MtlsServer[] = [];
  let ran = 0;

  const files = (name: string): TlsFiles => pkiFiles(pki, name);

  /** An mTLS listener on 127.0.0.1 presenting the certificate `name`, admitting the executor role. */
  async function serveAs(name: string): Promise<number> {
    const s = await createMtlsServer(
      (_req, res) => {
        ran += 1;
        res.end('served');
      },
      { files: files(name), allow: ['executor', 'gate'], host: '127.0.0.1', port: 0 },
    );
    servers.push(s);
    return Number(new URL(s.url).port);
  }

  /**
   * A `gate` certificate under the development CA as an operator's CA might issue it: no host in
   * its subject alternative names, serverAuth and clientAuth, and a common name that spells a host.
   */
  async function issueNoSanServer(name: string, cn: string): Promise<void> {
    const caKey = await webcrypto.subtle.importKey(
      'pkcs8',
      PemConverter.decodeFirst(readFileSync(pkiPaths(pki).caKey, 'utf8')),
      ALG,
      false,
      ['sign'],
    );
    const ca = new X509Certificate(readFileSync(pkiPaths(pki).caCert, 'utf8'));
    const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
    const cert = await X509CertificateGenerator.create({
      serialNumber: '0badc0de',
      subject: `CN=${cn}`,
      issuer: ca.subject,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
      publicKey: keys.publicKey,
      signingKey: caKey,
      signingAlgorithm: ALG,
      extensions: [
        new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth, ExtendedKeyUsage.clientAuth]),
        new SubjectAlternativeNameExtension([{ type: 'url', value: 'urn:failclosed:role:gate' }]),
      ],
    });
    const key = PemConverter.encode(
      await webcrypto.subtle.exportKey('pkcs8', keys.privateKey),
      'PRIVATE KEY',
    );
    writeFileSync(pkiPaths(pki).cert(name), `${cert.toString('pem')}\n`);
    writeFileSync(pkiPaths(pki).key(name), `${key}\n`, { mode: 0o600 });
  }

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'fc-client-only-'));
    pki = join(root, 'pki');
    await createDevCa(pki);
    await Promise.all([
      // A `gate` certificate naming hosts, and a keyless Gate's own certificate.
      issueCert(pki, { role: 'gate' }),
      issueCert(pki, { role: 'gate', name: 'gate-1', clientOnly: true }),
      issueCert(pki, { role: 'gate', name: 'localhost', clientOnly: true }),
      issueCert(pki, { role: 'executor' }),
      issueNoSanServer('gate-cn', 'localhost'),
    ]);
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('issues it with no host and clientAuth alone', async () => {
    const pem = readFileSync(pkiPaths(pki).cert('gate-1'), 'utf8');
    const cert = new NodeX509Certificate(pem);
    expect(cert.subjectAltName).toBe('URI:urn:failclosed:role:gate');
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(serverNamesOf(pem)).toEqual([]);
    expect(() => assertNamesNoHost(pem, 'gate-1.pem')).not.toThrow();
    // A server's `gate` certificate names its hosts: it is no client-only one.
    expect(() => assertNamesNoHost(readFileSync(pkiPaths(pki).cert('gate'), 'utf8'), 'gate.pem')).toThrow(
      /names DNS:localhost, IP:127\.0\.0\.1, IP:::1/,
    );
    expect(() => assertNamesNoHost('not a certificate', 'x.pem')).toThrow(/cannot be read/);
    await expect(
      issueCert(pki, { role: 'gate', name: 'g', clientOnly: true, hosts: ['cp'] }),
    ).rejects.toThrow(/names no host/);
  });

  it('a gate certificate naming hosts is accepted as a gate-role server (the check below is not vacuous)', async () => {
    const port = await serveAs('gate');
    const agent = await createMtlsAgent({ files: files('executor'), expect: ['gate'] });
    try {
      expect(await getWho(`https://127.0.0.1:${port}`, agent.current())).toEqual({ status: 200 });
      expect(await getWho(`https://localhost:${port}`, agent.current())).toEqual({ status: 200 });
    } finally {
      agent.close();
    }
  });

  it('refuses a keyless Gate certificate served as a gate-role server, by IP and by host name', async () => {
    const before = ran;
    // Named `localhost`: its common name spells the host the Agent asks for.
    for (const name of ['gate-1', 'localhost']) {
      const port = await serveAs(name);
      const agent = await createMtlsAgent({ files: files('executor'), expect: ['gate'] });
      try {
        for (const host of ['127.0.0.1', 'localhost']) {
          const r = await getWho(`https://${host}:${port}`, agent.current());
          expect(r.status, `${name} at ${host}`).toBeUndefined();
          expect(r.error).toMatch(/unsuitable certificate purpose/);
        }
      } finally {
        agent.close();
      }
    }
    expect(ran).toBe(before);
  });

  it('never falls back to the common name: a server certificate naming no host is refused', async () => {
    const before = ran;
    const port = await serveAs('gate-cn');
    const agent = await createMtlsAgent({ files: files('executor'), expect: ['gate'] });
    try {
      const r = await getWho(`https://localhost:${port}`, agent.current());
      expect(r).toEqual({ error: 'server refused: its certificate names no host (localhost)' });
    } finally {
      agent.close();
    }
    expect(ran).toBe(before);
  });

  it('a client-only Agent refuses its own certificate naming a host, at start and at reload', async () => {
    await expect(
      createMtlsAgent({ files: files('gate'), expect: ['executor'], clientOnly: true }),
    ).rejects.toThrow(/gate\.pem names DNS:localhost.*must name no host/);
    const dir = join(root, 'reload');
    await createDevCa(dir);
    await issueCert(dir, { role: 'gate', name: 'g', clientOnly: true });
    const own: TlsFiles = {
      ca: pkiPaths(dir).caCert,
      cert: pkiPaths(dir).cert('g'),
      key: pkiPaths(dir).key('g'),
    };
    const agent = await createMtlsAgent({ files: own, expect: ['executor'], clientOnly: true });
    try {
      await issueCert(dir, { role: 'gate', name: 'g' });
      await expect(agent.reload()).rejects.toThrow(/names DNS:localhost/);
    } finally {
      agent.close();
    }
  });

  it('failclosed certs issue --no-host issues one, and refuses --host with it', async () => {
    let out = '';
    expect(
      await runCertsCli(['issue', '--dir', pki, '--role', 'gate', '--name', 'gate-2', '--no-host'], (t) => {
        out += t;
      }),
    ).toBe(0);
    expect(out).toContain('gate-2.pem');
    const cert = new NodeX509Certificate(readFileSync(pkiPaths(pki).cert('gate-2')));
    expect(cert.subjectAltName).toBe('URI:urn:failclosed:role:gate');
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    await expect(
      runCertsCli(['issue', '--dir', pki, '--role', 'gate', '--no-host', '--host', 'cp'], () => undefined),
    ).rejects.toThrow(CertsUsageError);
  });

  it('failclosed certs init --keyless-gate issues each named Gate one beside the hosts’ certificates', async () => {
    const dir = join(root, 'init');
    const args = [
      'init',
      '--dir',
      dir,
      '--host',
      'control-plane',
      '--keyless-gate',
      'gate-a',
      '--keyless-gate',
      'gate-b',
    ];
    expect(await runCertsCli(args, () => undefined)).toBe(0);
    for (const g of ['gate-a', 'gate-b']) {
      const cert = new NodeX509Certificate(readFileSync(pkiPaths(dir).cert(g)));
      expect(cert.subjectAltName, g).toBe('URI:urn:failclosed:role:gate');
      expect(cert.keyUsage, g).toEqual(['1.3.6.1.5.5.7.3.2']);
    }
    expect(serverNamesOf(readFileSync(pkiPaths(dir).cert('gate'), 'utf8'))).toEqual(['DNS:control-plane']);
    // The Control Plane's own `gate.pem` is never overwritten by a keyless Gate's.
    // Nor the client's, and a name that is no file name is refused before anything is re-issued.
    const before = readFileSync(pkiPaths(dir).cert('gate'), 'utf8');
    for (const name of ['gate', 'client', 'ca', 'Gate-A'])
      await expect(
        runCertsCli(['init', '--dir', dir, '--keyless-gate', name], () => undefined),
        name,
      ).rejects.toThrow(CertsUsageError);
    expect(readFileSync(pkiPaths(dir).cert('gate'), 'utf8')).toBe(before);
  });
});
