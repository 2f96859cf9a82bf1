/**
 * Mutual TLS between roles over real TLS sockets (FC-INV-6 authenticated Gate identity, L7
 * hardening): a listener that admits only the `gate` role refuses every other peer (no
 * certificate, self-signed, another CA, expired, wrong role, revoked by serial or CRL), and the
 * handler never runs for them; reload swaps in a rotated certificate and new revocations
 * without closing the listener; the client Agent refuses a server of the wrong role.
 */
import { mkdtempSync, readFileSync, statSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:https';
import { connect } from 'node:net';
import type { Agent } from 'node:https';
import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PemConverter,
  SubjectAlternativeNameExtension,
  X509CertificateGenerator,
  X509Certificate as PeculiarCertificate,
  X509CrlGenerator,
} from '../../src/transport/x509.js';
import {
  createDevCa,
  identityOf,
  createMtlsAgent,
  createMtlsServer,
  issueCert,
  pkiPaths,
  revokeCert,
  writeCrl,
} from '../../src/transport/index.js';
import type { MtlsServer, Refusal, TlsFiles } from '../../src/transport/index.js';

const DAY = 86_400_000;

interface Answer {
  readonly status?: number;
  readonly body?: string;
  readonly error?: string;
}

/** One GET over TLS with the given client credentials (or none), to the listener at `url`. */
function get(
  url: string,
  tls: { cert?: Buffer; key?: Buffer; ca: Buffer } | { agent: Agent },
): Promise<Answer> {
  return new Promise((resolve) => {
    const req = request(
      `${url}/who`,
      'agent' in tls ? { agent: tls.agent } : { ...tls, agent: false, maxVersion: 'TLSv1.3' },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on('error', (e) => resolve({ error: e.message }));
      },
    );
    req.on('error', (e: Error & { code?: string }) => resolve({ error: e.code ?? e.message }));
    req.end();
  });
}

describe('mutual TLS listener admitting the gate role only', () => {
  let root: string;
  let pki: string;
  let other: string;
  let server: MtlsServer;
  let ran = 0;
  /** The listener's clock runs `skew` ms ahead of the real one. */
  let skew = 0;
  const refused: Refusal[] = [];
  const files = (name: string, dir = pki) => ({
    cert: readFileSync(pkiPaths(dir).cert(name)),
    key: readFileSync(pkiPaths(dir).key(name)),
    ca: readFileSync(pkiPaths(pki).caCert),
  });
  let serverFiles: { -readonly [K in keyof TlsFiles]: TlsFiles[K] };

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'fc-mtls-'));
    pki = join(root, 'pki');
    other = join(root, 'other');
    await createDevCa(pki);
    await createDevCa(other);
    const now = Date.now();
    await Promise.all([
      issueCert(pki, { role: 'executor' }),
      issueCert(pki, { role: 'gate' }),
      issueCert(pki, { role: 'control-plane' }),
      issueCert(pki, { role: 'client', name: 'agent-1' }),
      issueCert(pki, { role: 'gate', name: 'gate-expired', notBefore: now - 10 * DAY, days: 1 }),
      issueCert(pki, { role: 'gate', name: 'gate-revoked' }).then((r) => revokeCert(pki, r.serial)),
      issueCert(other, { role: 'gate' }),
    ]);
    serverFiles = {
      ca: pkiPaths(pki).caCert,
      cert: pkiPaths(pki).cert('executor'),
      key: pkiPaths(pki).key('executor'),
      crl: pkiPaths(pki).crl,
    };
    server = await createMtlsServer(
      (_req, res, peer) => {
        ran += 1;
        res.end(peer.role);
      },
      {
        files: serverFiles,
        allow: ['gate'],
        host: '127.0.0.1',
        port: 0,
        now: () => Date.now() + skew,
        onRefused: (r) => refused.push(r),
      },
    );
  });
  afterAll(async () => {
    await server.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('writes private keys 0600 and names the role in one SAN URI', () => {
    for (const name of ['ca', 'gate', 'executor', 'agent-1'])
      expect(statSync(name === 'ca' ? pkiPaths(pki).caKey : pkiPaths(pki).key(name)).mode & 0o777).toBe(
        0o600,
      );
    const cert = new X509Certificate(readFileSync(pkiPaths(pki).cert('gate')));
    expect(cert.subjectAltName).toContain('URI:urn:failclosed:role:gate');
    expect(cert.checkIssued(new X509Certificate(readFileSync(pkiPaths(pki).caCert)))).toBe(true);
  });

  it('a peer that connects and never finishes its handshake is closed at the handshake bound and refused', async () => {
    const s = await createMtlsServer(() => undefined, {
      files: serverFiles,
      allow: ['gate'],
      host: '127.0.0.1',
      port: 0,
      handshakeTimeoutMs: 200,
      onRefused: (r) => refused.push(r),
    });
    try {
      const before = refused.length;
      const socket = connect(Number(new URL(s.url).port), '127.0.0.1');
      // Nothing is ever sent: the listener, not the peer, ends it.
      await new Promise<void>((resolve) => socket.once('close', () => resolve()));
      expect(refused.slice(before)).toEqual([
        expect.objectContaining({ reason: 'handshake', detail: 'ERR_TLS_HANDSHAKE_TIMEOUT' }),
      ]);
    } finally {
      await s.close();
    }
  });

  it('admits the gate', async () => {
    const before = ran;
    expect(await get(server.url, files('gate'))).toEqual({ status: 200, body: 'gate' });
    expect(ran).toBe(before + 1);
  });

  it.each([
    ['no certificate', () => ({ ca: readFileSync(pkiPaths(pki).caCert) }), 'handshake'],
    ['another CA', () => files('gate', other), 'handshake'],
    // A leaf presented without its CA: a self-issued certificate the listener's CA never signed.
    [
      'self-signed (the other CA itself)',
      () => ({
        ...files('gate'),
        cert: readFileSync(pkiPaths(other).caCert),
        key: readFileSync(pkiPaths(other).caKey),
      }),
      'handshake',
    ],
    ['an expired certificate', () => files('gate-expired'), 'handshake'],
    ['the wrong role', () => files('control-plane'), 'wrong_role'],
    ['a client certificate', () => files('agent-1'), 'wrong_role'],
    ['a revoked certificate', () => files('gate-revoked'), 'revoked'],
  ] as const)('refuses %s, and the handler never runs', async (_name, creds, reason) => {
    const before = ran;
    const counted = server.refusals()[reason];
    const a = await get(server.url, creds());
    expect(a.status).toBeUndefined();
    expect(ran).toBe(before);
    // The refusal is counted when the listener has seen it (the TLS alert may reach the client first).
    await expect.poll(() => server.refusals()[reason]).toBe(counted + 1);
    expect(refused.at(-1)?.reason).toBe(reason);
  });

  it('reload picks up a rotated certificate and new revocations without closing the listener', async () => {
    const oldFingerprint = new X509Certificate(readFileSync(serverFiles.cert)).fingerprint256;
    const gate = await issueCert(pki, { role: 'gate', name: 'gate-2' });
    await issueCert(pki, { role: 'executor' });
    await server.reload();
    const agent = await createMtlsAgent({
      files: { ca: pkiPaths(pki).caCert, cert: gate.cert, key: gate.key },
      expect: ['executor'],
    });
    let seen = '';
    const req = await new Promise<Answer>((resolve) => {
      const r = request(`${server.url}/who`, { agent: agent.current() }, (res) => {
        seen = (
          res.socket as unknown as { getPeerCertificate(): { fingerprint256: string } }
        ).getPeerCertificate().fingerprint256;
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
      });
      r.on('error', (e) => resolve({ error: e.message }));
      r.end();
    });
    expect(req.status).toBe(200);
    expect(seen).not.toBe(oldFingerprint);
    // Revoke the new gate certificate; after a reload its calls are refused.
    await revokeCert(pki, gate.serial);
    await server.reload();
    await agent.reload();
    const before = ran;
    const after = await get(server.url, { agent: agent.current() });
    expect(after.status).toBeUndefined();
    expect(ran).toBe(before);
    agent.close();
  });

  it('a reload that cannot read its files refuses every peer until one succeeds', async () => {
    const good = pkiPaths(pki).crl;
    serverFiles.crl = join(root, 'missing.crl');
    await expect(server.reload()).rejects.toThrow(/ENOENT|no such file/);
    const before = ran;
    expect((await get(server.url, files('gate'))).status).toBeUndefined();
    expect(ran).toBe(before);
    serverFiles.crl = good;
    await server.reload();
    expect(await get(server.url, files('gate'))).toEqual({ status: 200, body: 'gate' });
  });

  /** A keep-alive Agent holding the gate certificate, on a clock `agentSkew()` ms ahead. */
  const gateAgent = (agentSkew: () => number = () => 0) =>
    createMtlsAgent({
      files: { ca: pkiPaths(pki).caCert, cert: pkiPaths(pki).cert('gate'), key: pkiPaths(pki).key('gate') },
      expect: ['executor'],
      now: () => Date.now() + agentSkew(),
    });

  it('a failed reload refuses the next request on a kept-alive connection', async () => {
    const agent = await gateAgent();
    expect(await get(server.url, { agent: agent.current() })).toEqual({ status: 200, body: 'gate' });
    const good = pkiPaths(pki).crl;
    serverFiles.crl = join(root, 'missing.crl');
    await expect(server.reload()).rejects.toThrow(/ENOENT|no such file/);
    const before = ran;
    expect((await get(server.url, { agent: agent.current() })).status).toBeUndefined();
    expect(ran).toBe(before);
    serverFiles.crl = good;
    await server.reload();
    agent.close();
  });

  it('a kept-alive connection is refused once the gate certificate expires', async () => {
    const agent = await gateAgent();
    expect(await get(server.url, { agent: agent.current() })).toEqual({ status: 200, body: 'gate' });
    const notAfter = Date.parse(new X509Certificate(readFileSync(pkiPaths(pki).cert('gate'))).validTo);
    const counted = server.refusals().expired;
    skew = notAfter - Date.now() + DAY;
    try {
      const before = ran;
      expect((await get(server.url, { agent: agent.current() })).status).toBeUndefined();
      expect(ran).toBe(before);
      expect(server.refusals().expired).toBeGreaterThan(counted);
    } finally {
      skew = 0;
      agent.close();
    }
  });

  it('the client Agent does not reuse a connection to a server whose certificate expired', async () => {
    let agentSkew = 0;
    const agent = await gateAgent(() => agentSkew);
    expect(await get(server.url, { agent: agent.current() })).toEqual({ status: 200, body: 'gate' });
    const notAfter = Date.parse(new X509Certificate(readFileSync(serverFiles.cert)).validTo);
    agentSkew = notAfter - Date.now() + DAY;
    const before = ran;
    expect((await get(server.url, { agent: agent.current() })).error).toMatch(/server refused: expired/);
    expect(ran).toBe(before);
    agent.close();
  });

  it('a reload refuses a CRL older than the one loaded: a rollback never un-revokes', async () => {
    const crl = pkiPaths(pki).crl;
    const older = readFileSync(crl);
    await writeCrl(pki, { now: () => Date.now() + 120_000 });
    await server.reload();
    const newer = readFileSync(crl);
    writeFileSync(crl, older);
    await expect(server.reload()).rejects.toThrow(/older than the one loaded/);
    writeFileSync(crl, newer);
    await server.reload();
    expect(await get(server.url, files('gate'))).toEqual({ status: 200, body: 'gate' });
  });

  it('a reload refuses a CRL without nextUpdate (it would never go stale)', async () => {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const caKey = await crypto.subtle.importKey(
      'pkcs8',
      PemConverter.decodeFirst(readFileSync(pkiPaths(pki).caKey, 'utf8')),
      alg,
      false,
      ['sign'],
    );
    const ca = new PeculiarCertificate(readFileSync(pkiPaths(pki).caCert, 'utf8'));
    const crl = await X509CrlGenerator.create({
      issuer: ca.subject,
      thisUpdate: new Date(Date.now() + 180_000),
      entries: [],
      signingKey: caKey,
      signingAlgorithm: alg,
    });
    const good = pkiPaths(pki).crl;
    serverFiles.crl = join(root, 'no-next-update.crl');
    writeFileSync(serverFiles.crl, PemConverter.encode(crl.rawData, 'X509 CRL'));
    try {
      await expect(server.reload()).rejects.toThrow(/nextUpdate/);
    } finally {
      serverFiles.crl = good;
      await server.reload();
    }
  });

  it('the client Agent refuses a server whose certificate names another role', async () => {
    const agent = await createMtlsAgent({
      files: { ca: pkiPaths(pki).caCert, cert: pkiPaths(pki).cert('gate'), key: pkiPaths(pki).key('gate') },
      expect: ['control-plane'],
    });
    const before = ran;
    const a = await get(server.url, { agent: agent.current() });
    expect(a.error).toMatch(/server refused: wrong_role/);
    expect(ran).toBe(before);
    agent.close();
  });
});

describe('the role a certificate names', () => {
  /** A self-signed certificate with these SAN URIs (identityOf reads names; the chain is not its part). */
  const withUris = async (uris: string[]) => {
    const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
    const keys = await crypto.subtle.generateKey(alg, false, ['sign', 'verify']);
    const cert = await X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: 'CN=test',
      keys,
      signingAlgorithm: alg,
      extensions: [new SubjectAlternativeNameExtension(uris.map((value) => ({ type: 'url', value })))],
    });
    return identityOf(new Uint8Array(PemConverter.decode(cert.toString('pem'))[0]!), '00');
  };

  it('reads the URN prefix case-insensitively and refuses two role URIs in any spelling', async () => {
    expect((await withUris(['URN:FailClosed:ROLE:gate'])).role).toBe('gate');
    expect(
      (await withUris(['urn:failclosed:role:gate', 'URN:failclosed:role:executor'])).role,
    ).toBeUndefined();
    expect((await withUris(['urn:failclosed:role:GATE'])).role).toBeUndefined();
  });
});
