/**
 * Revocation along the chain (FC-INV-6 authenticated Gate identity, L7 hardening: mutual TLS
 * between roles, revocation handled). An operator's PKI issues role certificates from an
 * intermediate CA under an offline root: revoking the intermediate on the root's CRL must refuse
 * every certificate under it, though the leaf's own serial is on no list; the intermediate's own
 * CRL revokes its leaves; a CRL file holds one CRL per CA, and a reload never drops one.
 */
import { webcrypto } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  PemConverter,
  SubjectAlternativeNameExtension,
  X509CertificateGenerator,
  X509CrlGenerator,
} from '../../src/transport/x509.js';
import type { X509Certificate } from '../../src/transport/x509.js';
import { createMtlsServer, loadTlsMaterial, roleUri } from '../../src/transport/index.js';
import type { MtlsServer, Refusal, TlsFiles } from '../../src/transport/index.js';

const crypto = webcrypto;
const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;
type Keys = webcrypto.CryptoKeyPair;

interface Issued {
  readonly cert: X509Certificate;
  readonly keys: Keys;
}

let serialCounter = 0x1000;
const newKeys = (): Promise<Keys> => crypto.subtle.generateKey(ALG, true, ['sign', 'verify']);

async function rootCa(name: string): Promise<Issued> {
  const keys = await newKeys();
  const cert = await X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: (serialCounter++).toString(16),
      name: `CN=${name}`,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 30 * DAY),
      keys,
      signingAlgorithm: ALG,
      extensions: [
        new BasicConstraintsExtension(true, 1, true),
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
      ],
    },
    crypto,
  );
  return { cert, keys };
}

async function issue(issuer: Issued, subject: string, kind: 'ca' | 'gate' | 'executor'): Promise<Issued> {
  const keys = await newKeys();
  const extensions =
    kind === 'ca'
      ? [
          new BasicConstraintsExtension(true, 0, true),
          new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
        ]
      : [
          new BasicConstraintsExtension(false, undefined, true),
          new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
          new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth, ExtendedKeyUsage.clientAuth]),
          new SubjectAlternativeNameExtension([
            { type: 'url', value: roleUri(kind) },
            { type: 'ip', value: '127.0.0.1' },
          ]),
        ];
  const cert = await X509CertificateGenerator.create(
    {
      serialNumber: (serialCounter++).toString(16),
      subject,
      issuer: issuer.cert.subject,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 30 * DAY),
      publicKey: keys.publicKey,
      signingKey: issuer.keys.privateKey,
      signingAlgorithm: ALG,
      extensions,
    },
    crypto,
  );
  return { cert, keys };
}

async function crlOf(
  issuer: Issued,
  revoked: readonly Issued[],
  thisUpdate = Date.now() - 60_000,
): Promise<string> {
  const crl = await X509CrlGenerator.create(
    {
      issuer: issuer.cert.subject,
      thisUpdate: new Date(thisUpdate),
      nextUpdate: new Date(Date.now() + DAY),
      entries: revoked.map((r) => ({ serialNumber: r.cert.serialNumber, revocationDate: new Date() })),
      signingKey: issuer.keys.privateKey,
      signingAlgorithm: ALG,
    },
    crypto,
  );
  return `${PemConverter.encode(crl.rawData, 'X509 CRL')}\n`;
}

const pem = (i: Issued): string => `${i.cert.toString('pem')}\n`;
async function keyPem(i: Issued): Promise<string> {
  return `${PemConverter.encode(await crypto.subtle.exportKey('pkcs8', i.keys.privateKey), 'PRIVATE KEY')}\n`;
}

function get(url: string, tls: { cert: string; key: string; ca: string }): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request(`${url}/who`, { ...tls, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', (e) => resolve(e.message));
    });
    req.on('error', (e: Error & { code?: string }) => resolve(e.code ?? e.message));
    req.end();
  });
}

describe('revocation along a chain with an intermediate CA', () => {
  let dir: string;
  let root: Issued;
  let intermediate: Issued;
  let gate: Issued;
  let otherGate: Issued;
  let server: MtlsServer;
  let ran = 0;
  const refused: Refusal[] = [];
  let files: TlsFiles;
  const at = (name: string) => join(dir, name);
  let client: (leaf: Issued) => Promise<{ cert: string; key: string; ca: string }>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fc-mtls-chain-'));
    root = await rootCa('failclosed test root');
    intermediate = await issue(root, 'CN=failclosed test roles CA', 'ca');
    gate = await issue(intermediate, 'CN=gate-1, OU=gate', 'gate');
    otherGate = await issue(intermediate, 'CN=gate-2, OU=gate', 'gate');
    const executor = await issue(root, 'CN=executor, OU=executor', 'executor');
    writeFileSync(at('root.pem'), pem(root));
    writeFileSync(at('bundle.pem'), pem(root) + pem(intermediate));
    writeFileSync(at('executor.pem'), pem(executor));
    writeFileSync(at('executor.key'), await keyPem(executor), { mode: 0o600 });
    writeFileSync(at('crl.pem'), await crlOf(root, []));
    files = { ca: at('root.pem'), cert: at('executor.pem'), key: at('executor.key'), crl: at('crl.pem') };
    // A client presents its leaf with the intermediate after it (docs/deployment.md "chain").
    client = async (leaf) => ({
      cert: pem(leaf) + pem(intermediate),
      key: await keyPem(leaf),
      ca: pem(root),
    });
    server = await createMtlsServer(
      (_req, res) => {
        ran += 1;
        res.end('ok');
      },
      { files, allow: ['gate'], host: '127.0.0.1', port: 0, onRefused: (r) => refused.push(r) },
    );
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('admits a gate certificate issued by an intermediate under the root', async () => {
    expect(await get(server.url, await client(gate))).toBe(200);
  });

  it("refuses every certificate under an intermediate revoked on the root's CRL", async () => {
    writeFileSync(at('crl.pem'), await crlOf(root, [intermediate]));
    await server.reload();
    const before = ran;
    refused.length = 0;
    for (const leaf of [gate, otherGate])
      expect(await get(server.url, await client(leaf))).toBe('ECONNRESET');
    expect(ran).toBe(before);
    expect(refused.map((r) => r.reason)).toEqual(['revoked', 'revoked']);
    // The leaf's own serial is on no list: it is the chain above it that is revoked.
    expect(refused[0]!.serial).toBe(gate.cert.serialNumber.replace(/^0+/, '').toLowerCase());
  });

  it("revokes a leaf on its intermediate's CRL, one CRL per CA in one file", async () => {
    files = { ...files, ca: at('bundle.pem') };
    writeFileSync(at('crl.pem'), (await crlOf(root, [], Date.now())) + (await crlOf(intermediate, [gate])));
    const s = await createMtlsServer(
      (_req, res) => {
        ran += 1;
        res.end('ok');
      },
      { files, allow: ['gate'], host: '127.0.0.1', port: 0, onRefused: (r) => refused.push(r) },
    );
    try {
      refused.length = 0;
      const before = ran;
      expect(await get(s.url, await client(gate))).toBe('ECONNRESET');
      expect(refused.map((r) => r.reason)).toEqual(['revoked']);
      expect(await get(s.url, await client(otherGate))).toBe(200);
      expect(ran).toBe(before + 1);
      // A reload that drops the intermediate's CRL would un-revoke gate-1: refused, and the
      // listener refuses everyone until a reload succeeds.
      writeFileSync(at('crl.pem'), await crlOf(root, [], Date.now() + 1000));
      await expect(s.reload()).rejects.toThrow(/older than the one loaded/);
      expect(await get(s.url, await client(otherGate))).toBe('ECONNRESET');
    } finally {
      await s.close();
    }
  });

  it('a look-alike of the revoked intermediate presented with the leaf does not hide the revocation', async () => {
    // The real intermediate is configured (its CRL checkable) and revoked on the root's CRL; the
    // peer sends its leaf with a certificate of the same name under another key. OpenSSL verifies
    // the leaf against the configured one; revocation must see that one, not the look-alike.
    const forged = await rootCa('failclosed test roles CA');
    files = { ...files, ca: at('bundle.pem') };
    writeFileSync(at('crl.pem'), await crlOf(root, [intermediate], Date.now() + 2000));
    const s = await createMtlsServer(
      (_req, res) => {
        ran += 1;
        res.end('ok');
      },
      { files, allow: ['gate'], host: '127.0.0.1', port: 0, onRefused: (r) => refused.push(r) },
    );
    try {
      refused.length = 0;
      const before = ran;
      const tls = { cert: pem(gate) + pem(forged), key: await keyPem(gate), ca: pem(root) };
      expect(await get(s.url, tls)).toBe('ECONNRESET');
      expect(refused.map((r) => r.reason)).toEqual(['revoked']);
      expect(ran).toBe(before);
    } finally {
      await s.close();
    }
  });

  it('refuses a file with two CRLs of one CA, and a CRL of a CA not configured', async () => {
    writeFileSync(at('two.pem'), (await crlOf(root, [])) + (await crlOf(root, [intermediate])));
    await expect(loadTlsMaterial({ ...files, ca: at('root.pem'), crl: at('two.pem') })).rejects.toThrow(
      /two CRLs of/,
    );
    writeFileSync(at('foreign.pem'), await crlOf(intermediate, []));
    await expect(loadTlsMaterial({ ...files, ca: at('root.pem'), crl: at('foreign.pem') })).rejects.toThrow(
      /not issued by a configured CA/,
    );
  });
});
