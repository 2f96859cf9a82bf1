/**
 * A listener that must serve its own role (FC-INV-6, L7 mutual TLS between roles): the Control
 * Plane's internal listener serves a certificate naming the `control-plane` role, because its peers
 * accept it by that role alone. Over real TLS sockets: `createMtlsServer` with `serves` refuses to
 * start on a certificate naming another role, none, or one that cannot be read; a reload that
 * brings such a certificate fails, and the listener then refuses every peer (its handler never
 * runs) until a reload with the right one succeeds. And a client expecting `control-plane` refuses
 * a `gate` server that names the host it dialled.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertNamesRole,
  createDevCa,
  createMtlsAgent,
  createMtlsServer,
  issueCert,
  pkiPaths,
} from '../../src/transport/index.js';
import type { MtlsServer, TlsFiles } from '../../src/transport/index.js';
import { getWho, pkiFiles } from '../support/mtls.js';

const SERVES = { role: 'control-plane', fix: 'issue one with: certs issue --role control-plane' } as const;

describe('a listener serves its own role only', () => {
  let root: string;
  let pki: string;
  const servers: MtlsServer[] = [];
  let ran = 0;
  const files = (name: string): TlsFiles => pkiFiles(pki, name);
  const listen = async (name: string, serves?: typeof SERVES): Promise<MtlsServer> => {
    const s = await createMtlsServer(
      (_req, res) => {
        ran += 1;
        res.end('served');
      },
      {
        files: files(name),
        allow: ['executor'],
        host: '127.0.0.1',
        port: 0,
        ...(serves === undefined ? {} : { serves }),
      },
    );
    servers.push(s);
    return s;
  };
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'fc-own-role-'));
    pki = join(root, 'pki');
    await createDevCa(pki);
    await Promise.all([
      issueCert(pki, { role: 'control-plane' }),
      issueCert(pki, { role: 'gate' }),
      issueCert(pki, { role: 'executor' }),
    ]);
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('reads the role as peers read it', () => {
    const pem = (n: string) => readFileSync(pkiPaths(pki).cert(n), 'latin1');
    expect(() => assertNamesRole(pem('control-plane'), 'control-plane', 'cp.pem', 'fix')).not.toThrow();
    expect(() => assertNamesRole(pem('gate'), 'control-plane', 'gate.pem', 'the fix')).toThrow(
      'gate.pem names the gate role, not control-plane (urn:failclosed:role:control-plane): the fix',
    );
    expect(() => assertNamesRole('garbage', 'control-plane', 'g.pem', 'fix')).toThrow(
      /g\.pem: its role cannot be read/,
    );
  });

  it('refuses to start on a certificate that does not name its role', async () => {
    await expect(listen('gate', SERVES)).rejects.toThrow(/gate\.pem names the gate role, not control-plane/);
    await expect(listen('executor', SERVES)).rejects.toThrow(/names the executor role, not control-plane/);
  });

  it('a reload that brings another role fails and leaves every peer refused until a reload with its own succeeds', async () => {
    const dir = join(root, 'reload');
    await createDevCa(dir);
    await issueCert(dir, { role: 'control-plane' });
    await issueCert(dir, { role: 'executor' });
    const own = pkiFiles(dir, 'control-plane');
    const executorAgent = () =>
      createMtlsAgent({ files: pkiFiles(dir, 'executor'), expect: ['control-plane'] });
    const s = await createMtlsServer(
      (_req, res) => {
        ran += 1;
        res.end('served');
      },
      { files: own, allow: ['executor'], host: '127.0.0.1', port: 0, serves: SERVES },
    );
    servers.push(s);
    const agent = await executorAgent();
    try {
      expect(await getWho(s.url, agent.current())).toEqual({ status: 200 });
      const before = ran;
      // The control-plane file now holds a gate certificate (an operator's mistake).
      await issueCert(dir, { role: 'gate', name: 'control-plane' });
      await expect(s.reload()).rejects.toThrow(/names the gate role, not control-plane/);
      agent.close();
      const again = await executorAgent();
      try {
        expect((await getWho(s.url, again.current())).status).toBeUndefined();
        expect(ran).toBe(before);
        await issueCert(dir, { role: 'control-plane' });
        await s.reload();
        expect(await getWho(s.url, again.current())).toEqual({ status: 200 });
      } finally {
        again.close();
      }
    } finally {
      agent.close();
    }
  });

  it('a client expecting control-plane refuses a gate server naming the host it dialled; the control-plane one is accepted', async () => {
    const rogue = await listen('gate');
    const cp = await listen('control-plane', SERVES);
    const agent = await createMtlsAgent({ files: files('executor'), expect: ['control-plane'] });
    try {
      const before = ran;
      for (const host of ['127.0.0.1', 'localhost']) {
        const r = await getWho(`https://${host}:${new URL(rogue.url).port}`, agent.current());
        expect(r, host).toEqual({ error: 'server refused: wrong_role' });
      }
      expect(ran).toBe(before);
      expect(await getWho(cp.url, agent.current())).toEqual({ status: 200 });
    } finally {
      agent.close();
    }
  });
});
