/**
 * How the product's mutual-TLS clients name a server, and which leaf the no-host check of a
 * keyless Gate's certificate reads (FC-INV-6, L7 mutual TLS; docs/deployment.md "A Gate's
 * certificate only connects out"): a server certificate whose SANs name only an IP address does
 * not pass for a DNS host by its common name (Node's own check falls back to the CN whenever no
 * DNS name is present), and the check reads the leaf TLS presents, not a PEM block OpenSSL skips.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate as NodeX509 } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertNamesNoHost,
  createDevCa,
  createMtlsAgent,
  createMtlsServer,
  issueCert,
  pkiPaths,
} from '../../src/transport/index.js';
import type { MtlsServer, TlsFiles } from '../../src/transport/index.js';
import { PemConverter } from '../../src/transport/x509.js';
import { getWho, pkiFiles } from '../support/mtls.js';

describe('server names and the leaf a certificate file presents', () => {
  let root: string;
  let pki: string;
  const servers: MtlsServer[] = [];
  let ran = 0;
  const files = (name: string): TlsFiles => pkiFiles(pki, name);
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'fc-server-names-'));
    pki = join(root, 'pki');
    await createDevCa(pki);
    await issueCert(pki, { role: 'executor' });
    await issueCert(pki, { role: 'gate' });
    await issueCert(pki, { role: 'gate', name: 'gate-1', clientOnly: true });
    // A gate certificate that names only an IP address; its CN (the file name) spells a host.
    await issueCert(pki, { role: 'gate', name: 'localhost', hosts: ['10.9.8.7'] });
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('refuses a server named only by an IP SAN when dialled by a DNS name (no CN fallback)', async () => {
    const s = await createMtlsServer(
      (_req, res) => {
        ran += 1;
        res.end('served');
      },
      { files: files('localhost'), allow: ['executor'], host: '127.0.0.1', port: 0 },
    );
    servers.push(s);
    const port = Number(new URL(s.url).port);
    const agent = await createMtlsAgent({ files: files('executor'), expect: ['gate'] });
    try {
      const r = await getWho(`https://localhost:${port}`, agent.current());
      expect(r.status).toBeUndefined();
      expect(ran).toBe(0);
    } finally {
      agent.close();
    }
  });

  it('the no-host check reads the leaf TLS serves', () => {
    const clientOnly = PemConverter.decodeFirst(readFileSync(pkiPaths(pki).cert('gate-1'), 'utf8'));
    const odd = `${PemConverter.encode(clientOnly, 'NOTE')}\n${readFileSync(pkiPaths(pki).cert('gate'), 'utf8')}`;
    writeFileSync(join(root, 'odd.pem'), odd);
    // What Node (OpenSSL) reads as this file's leaf: the Control Plane's certificate.
    expect(new NodeX509(Buffer.from(odd)).subjectAltName).toContain('IP Address:127.0.0.1');
    expect(() => assertNamesNoHost(odd, 'odd.pem')).toThrow(/names/);
  });

  it('a client-only agent refuses such a file (TLS would present the Control Plane certificate)', async () => {
    await expect(
      createMtlsAgent({
        files: { ca: pkiPaths(pki).caCert, cert: join(root, 'odd.pem'), key: pkiPaths(pki).key('gate') },
        expect: ['executor'],
        clientOnly: true,
      }),
    ).rejects.toThrow(/names/);
  });
});
