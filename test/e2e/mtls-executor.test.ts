/**
 * The Execution Layer over mutual TLS (FC-INV-6 authenticated Gate identity, L7 hardening), in a
 * real deployment with `tls` and `executor_url` in `failclosed.json`: the Gate reaches the
 * Execution Layer only over mTLS with its `gate` certificate, and a governed call runs. Every
 * other peer (no certificate, another CA, expired, wrong role, a client certificate, revoked) is
 * refused, recorded as `transport.refused`, and the tool never runs, even with a valid envelope.
 * A reload picks up a rotated Gate certificate without a restart. The remote port parses the
 * wire as untrusted input: a garbage answer or a server of the wrong role is a deny.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  createRemoteExecutor,
  dataPaths,
  defaultConfig,
  initDataDir,
  parseConfig,
  readClientFile,
  startEmbedded,
  traceparentOf,
} from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import type { GateExecutor } from '../../src/gate/index.js';
import { parseExecutionAnswer } from '../../src/gate/answers.js';
import {
  createDevCa,
  createMtlsAgent,
  createMtlsServer,
  issueCert,
  pkiPaths,
  revokeCert,
} from '../../src/transport/index.js';
import type { MtlsServer } from '../../src/transport/index.js';
import { freePort } from '../support/ports.js';

const DAY = 86_400_000;

/** `POST /v1/execute` to `url` with the given client credentials; `error` when the connection is refused or cut. */
function postExecute(
  url: string,
  body: object,
  creds: { cert?: Buffer; key?: Buffer; ca: Buffer },
): Promise<{ status?: number; error?: string }> {
  const text = JSON.stringify(body);
  return new Promise((resolve) => {
    const req = request(
      `${url}/v1/execute`,
      { method: 'POST', ...creds, agent: false, headers: { 'content-type': 'application/json' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
      },
    );
    req.on('error', (e: Error & { code?: string }) => resolve({ error: e.code ?? e.message }));
    req.end(text);
  });
}

describe('Gate → Execution Layer over mutual TLS', () => {
  let dir: string;
  let pki: string;
  let instance: EmbeddedInstance;
  let runs = 0;
  /** When set, the next envelope on its way to the Execution Layer is kept and the Gate answered "unavailable". */
  let capture: ((envelope: string) => void) | undefined;
  /** The captured call's void is dropped, so its envelope stays live for the direct attempts. */
  let dropVoid = false;
  const creds = (name: string, at = pki) => ({
    cert: readFileSync(pkiPaths(at).cert(name)),
    key: readFileSync(pkiPaths(at).key(name)),
    ca: readFileSync(pkiPaths(pki).caCert),
  });
  const demo = () => {
    const f = readClientFile(dir, DEMO_CLIENT.identity);
    return createClient({ url: instance.url, identity: f.identity, tenant: f.tenant, key: f.key });
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fc-mtls-e2e-'));
    await initDataDir(dir);
    pki = join(dir, 'certs');
    await createDevCa(pki);
    await createDevCa(join(dir, 'other'));
    const now = Date.now();
    await Promise.all([
      issueCert(pki, { role: 'gate' }),
      issueCert(pki, { role: 'executor' }),
      issueCert(pki, { role: 'control-plane' }),
      issueCert(pki, { role: 'client', name: 'agent-1' }),
      issueCert(pki, { role: 'gate', name: 'gate-expired', notBefore: now - 10 * DAY, days: 1 }),
      issueCert(join(dir, 'other'), { role: 'gate' }),
    ]);
    const revoked = await issueCert(pki, { role: 'gate', name: 'gate-revoked' });
    await revokeCert(pki, revoked.serial);
    const port = await freePort();
    const config = JSON.parse(readFileSync(dataPaths(dir).config, 'utf8')) as Record<string, unknown>;
    writeFileSync(
      dataPaths(dir).config,
      JSON.stringify({
        ...config,
        execution_port: port,
        execution_host: '127.0.0.1',
        executor_url: `https://127.0.0.1:${port}`,
        tls: {
          ca: 'certs/ca.pem',
          crl: 'certs/crl.pem',
          executor: { cert: 'certs/executor.pem', key: 'certs/executor.key' },
          gate: { cert: 'certs/gate.pem', key: 'certs/gate.key' },
        },
      }),
    );
    instance = await startEmbedded(dir, {
      port: 0,
      // Lowered so that an echo result can exceed what an answer may carry.
      executionAnswerBytes: 1024,
      onToolRun: () => void (runs += 1),
      decorate: {
        gateExecutor: (inner: GateExecutor): GateExecutor => ({
          execute: (call, writes, signal) => {
            const keep = capture;
            if (keep === undefined) return inner.execute(call, writes, signal);
            capture = undefined;
            dropVoid = true;
            keep(call.envelope);
            return Promise.resolve({
              outcome: 'deny',
              code: 'ERR_EXECUTION_UNAVAILABLE',
              reason: 'captured',
            });
          },
          void: (call, signal) => {
            if (!dropVoid) return inner.void(call, signal);
            dropVoid = false;
            return Promise.resolve({ outcome: 'deny', code: 'ERR_EXECUTION_UNAVAILABLE', reason: 'dropped' });
          },
        }),
      },
    });
  });
  afterAll(async () => {
    await instance?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a governed call runs through the mTLS Execution Layer, whose receipt is its own', async () => {
    expect(instance.executionUrl.startsWith('https://127.0.0.1:')).toBe(true);
    expect(instance.core.executorAgent).toBeDefined();
    const before = runs;
    const r = await demo().call('echo', { message: 'over mTLS' });
    expect(r.outcome).toBe('executed');
    expect(runs).toBe(before + 1);
    if (r.outcome !== 'executed') return;
    const entries = await instance.core.ledger.store.readByRequest(r.request_id);
    const receipt = entries.find((e) => e.type === 'execution.receipt');
    expect(receipt?.actor.role).toBe('executor');
    expect(receipt?.index).toBe(r.receipt.index);
  });

  it('a valid envelope presented directly by any peer but the Gate is refused; the tool never runs', async () => {
    const envelope = await new Promise<string>((resolve) => {
      capture = resolve;
      void demo().call('echo', { message: 'captured' });
    });
    const body = { envelope, tool: 'echo', tenant: DEMO_CLIENT.tenant, params: { message: 'captured' } };
    const before = runs;
    const attempts = {
      'no certificate': { ca: readFileSync(pkiPaths(pki).caCert) },
      'another CA': creds('gate', join(dir, 'other')),
      expired: creds('gate-expired'),
      'control-plane role': creds('control-plane'),
      'client certificate': creds('agent-1'),
      revoked: creds('gate-revoked'),
    };
    for (const [name, c] of Object.entries(attempts)) {
      const a = await postExecute(instance.executionUrl, body, c);
      expect(a.status, name).toBeUndefined();
    }
    expect(runs).toBe(before);
    const refusals = instance.core.ledger.store;
    const size = instance.core.ledger.size();
    await expect
      .poll(async () => {
        const all = await refusals.readRange(0, instance.core.ledger.size());
        return new Set(
          all
            .filter((e) => e.type === 'transport.refused')
            .map((e) => (e.payload as { reason: string }).reason),
        );
      })
      .toEqual(new Set(['handshake', 'wrong_role', 'revoked']));
    expect(size).toBeGreaterThan(0);
  });

  it('a result larger than an answer may carry is withheld and recorded; the deny says the tool ran', async () => {
    const before = runs;
    const r = await demo().call('echo', { message: 'x'.repeat(1000) });
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_OUTPUT_LIMIT', envelope_consumed: true });
    expect(runs).toBe(before + 1);
    const entries = await instance.core.ledger.store.readByRequest(r.request_id ?? '');
    const denial = entries.find((e) => e.type === 'denial');
    expect(denial?.actor.role).toBe('executor');
    expect(denial?.payload).toMatchObject({ code: 'ERR_TOOL_OUTPUT_LIMIT', stage: 'execution' });
    const failed = entries.find((e) => e.type === 'gateway.failed');
    expect(failed?.payload).toMatchObject({ code: 'ERR_TOOL_OUTPUT_LIMIT', envelope_consumed: true });
  });

  it('reload picks up a rotated Gate certificate without a restart', async () => {
    await issueCert(pki, { role: 'gate' });
    await instance.reloadTls();
    const r = await demo().call('echo', { message: 'after rotation' });
    expect(r.outcome).toBe('executed');
  });
});

describe('execution_host', () => {
  const parse = (extra: object) =>
    parseConfig(new TextEncoder().encode(JSON.stringify({ ...defaultConfig(), ...extra })));
  const tls = { ca: 'ca.pem', executor: { cert: 'e.pem', key: 'e.key' } };

  it('is accepted with tls.executor only: a plain-HTTP execution listener stays on loopback', () => {
    expect(parse({ tls, execution_host: '0.0.0.0' }).execution_host).toBe('0.0.0.0');
    expect(() => parse({ execution_host: '0.0.0.0' })).toThrow(/needs tls.executor/);
    expect(() => parse({ tls: { ca: 'ca.pem' }, execution_host: '::' })).toThrow(/needs tls.executor/);
    expect(() => parse({ tls, execution_host: 'example.com' })).toThrow(/IP address/);
  });
});

describe('the remote executor port parses the wire as untrusted input', () => {
  let pki: string;
  let garbage: MtlsServer;
  let answer = '';
  const HANG = 'hang';
  /** Told when a request to the hanging server arrives; `cut` once its connection closes. */
  let arrived: (() => void) | undefined;
  let cut = false;
  beforeAll(async () => {
    pki = mkdtempSync(join(tmpdir(), 'fc-mtls-port-'));
    await createDevCa(pki);
    await Promise.all([
      issueCert(pki, { role: 'gate' }),
      issueCert(pki, { role: 'executor' }),
      issueCert(pki, { role: 'control-plane' }),
    ]);
    garbage = await createMtlsServer(
      (req, res) => {
        if (answer !== HANG) return void res.end(answer);
        req.socket.once('close', () => void (cut = true));
        arrived?.();
      },
      {
        files: {
          ca: pkiPaths(pki).caCert,
          cert: pkiPaths(pki).cert('executor'),
          key: pkiPaths(pki).key('executor'),
        },
        allow: ['gate'],
        host: '127.0.0.1',
        port: 0,
      },
    );
  });
  afterAll(async () => {
    await garbage.close();
    rmSync(pki, { recursive: true, force: true });
  });
  const call = {
    envelope: 'a.b.c',
    tool: 'echo',
    tenant: 'acme',
    params: {},
    trace_id: '0123456789abcdef0123456789abcdef',
    request_id: 'r1',
  };

  it.each([
    ['not JSON', 'ok'],
    ['duplicate keys', '{"outcome":"deny","outcome":"executed"}'],
    ['executed without a receipt', '{"outcome":"executed","result":1}'],
    ['an unknown denial code', '{"outcome":"deny","code":"ERR_NOPE"}'],
  ])('%s → ERR_EXECUTION_UNAVAILABLE', async (_name, text) => {
    answer = text;
    const agent = await createMtlsAgent({
      files: { ca: pkiPaths(pki).caCert, cert: pkiPaths(pki).cert('gate'), key: pkiPaths(pki).key('gate') },
      expect: ['executor'],
    });
    const port = createRemoteExecutor({ url: garbage.url, agent });
    const r = parseExecutionAnswer(await port.execute(call));
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EXECUTION_UNAVAILABLE' });
    expect(await port.void({ ...call, code: 'ERR_LEDGER_UNAVAILABLE', stage: 'execution' })).toMatchObject({
      outcome: 'deny',
    });
    agent.close();
  });

  it('a server whose certificate is not the executor role is never talked to', async () => {
    answer = '{"outcome":"executed","result":1,"receipt":{"index":0,"entry_hash":"x"}}';
    const agent = await createMtlsAgent({
      files: { ca: pkiPaths(pki).caCert, cert: pkiPaths(pki).cert('gate'), key: pkiPaths(pki).key('gate') },
      expect: ['control-plane'],
    });
    const r = await createRemoteExecutor({ url: garbage.url, agent }).execute(call);
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EXECUTION_UNAVAILABLE' });
    agent.close();
  });

  it("the Gate's deadline cancels the request: the Execution Layer sees it cut", async () => {
    answer = HANG;
    const agent = await createMtlsAgent({
      files: { ca: pkiPaths(pki).caCert, cert: pkiPaths(pki).cert('gate'), key: pkiPaths(pki).key('gate') },
      expect: ['executor'],
    });
    const deadline = new AbortController();
    arrived = () => deadline.abort();
    const r = await createRemoteExecutor({ url: garbage.url, agent }).execute(
      call,
      undefined,
      deadline.signal,
    );
    expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_EXECUTION_UNAVAILABLE' });
    await expect.poll(() => cut).toBe(true);
    agent.close();
  });

  it('carries the trace id as a W3C traceparent', () => {
    expect(traceparentOf(call.trace_id)).toMatch(/^00-0123456789abcdef0123456789abcdef-[0-9a-f]{16}-01$/);
    expect(traceparentOf('not-a-trace')).toBeUndefined();
  });
});
