/**
 * The separate Execution Layer's configuration (`failclosed serve executor --config FILE`) and
 * the Control Plane's `internal_port` (and its `tls.control_plane`): parsed strictly at the edge; anything malformed refuses the start
 * (FC-INV-6, L7 mutual TLS between roles).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  assertControlPlaneConfig,
  controlPlaneConfigGaps,
  defaultConfig,
  initDataDir,
  parseConfig,
  parseExecutorConfig,
  policyBundleNamed,
} from '../../src/embedded/index.js';
import type { EmbeddedConfig } from '../../src/embedded/data-dir.js';
import { encodeBase64url } from '../../src/kernel/index.js';
import { runCli } from '../../src/cli/run.js';

const base = {
  audience: 'failclosed-executor',
  listen: { host: '127.0.0.1', port: 7443 },
  gate_url: 'https://127.0.0.1:7444',
  tls: { ca: 'certs/ca.pem', cert: 'certs/executor.pem', key: 'certs/executor.key' },
  nonces: 'nonces.db',
};
const parse = (o: object) => parseExecutorConfig(Buffer.from(JSON.stringify(o)), '/etc/fc');

describe('serve executor configuration', () => {
  it('resolves relative paths against the file, keeps a postgres URL, and applies the bounds’ defaults', () => {
    const c = parse(base);
    expect(c.tls).toEqual({
      ca: '/etc/fc/certs/ca.pem',
      cert: '/etc/fc/certs/executor.pem',
      key: '/etc/fc/certs/executor.key',
    });
    expect(c.nonces).toBe('/etc/fc/nonces.db');
    expect(c.keys_max_age_ms).toBe(5000);
    expect(c.gate_timeout_ms).toBe(2000);
    expect(parse({ ...base, nonces: 'postgres://u@127.0.0.1/db', nonces_schema: 'fc' }).nonces).toBe(
      'postgres://u@127.0.0.1/db',
    );
  });

  it('refuses unknown fields, keys it must not hold, plain HTTP to the Gate, and bad bounds', () => {
    expect(() => parse({ ...base, issuer_key: 'keys/issuer.jwk' })).toThrow('unknown field issuer_key');
    expect(() => parse({ ...base, gate_url: 'http://127.0.0.1:7444' })).toThrow(
      'gate_url must be https://HOST:PORT',
    );
    expect(() => parse({ ...base, gate_url: 'https://u:p@127.0.0.1:7444' })).toThrow(
      'gate_url must be https://HOST:PORT',
    );
    expect(() => parse({ ...base, listen: { host: 'localhost', port: 1 } })).toThrow(
      'listen.host must be an IP address',
    );
    expect(() => parse({ ...base, keys_max_age_ms: 0 })).toThrow(
      'keys_max_age_ms must be a positive integer',
    );
    expect(() => parse({ ...base, tls: { ...base.tls, pass: 'x' } })).toThrow('tls: unknown field pass');
    expect(() => parse({ ...base, nonces_schema: 'fc' })).toThrow('nonces_schema must be a string');
  });

  it('reads the policy bundle an envelope names without trusting it', () => {
    const hash = 'ab'.repeat(32);
    const jws = (claims: object) =>
      `${encodeBase64url(Buffer.from('{}'))}.${encodeBase64url(Buffer.from(JSON.stringify(claims)))}.sig`;
    expect(policyBundleNamed(jws({ policy_bundle: hash }))).toBe(hash);
    expect(policyBundleNamed(jws({ policy_bundle: '../etc/passwd' }))).toBeUndefined();
    expect(policyBundleNamed('not-a-jws')).toBeUndefined();
    expect(policyBundleNamed(42)).toBeUndefined();
  });
});

describe('failclosed.json internal_port', () => {
  const config = (extra: object) => Buffer.from(JSON.stringify({ ...defaultConfig(), ...extra }));
  const gate = { cert: 'certs/gate.pem', key: 'certs/gate.key' };
  const controlPlane = { cert: 'certs/control-plane.pem', key: 'certs/control-plane.key' };
  const tls = { ca: 'certs/ca.pem', control_plane: controlPlane };

  it("needs tls.control_plane, never the Gate's certificate in its place: peers accept the internal listener by the control-plane role (FC-INV-6)", () => {
    const fix = 'failclosed certs issue --role control-plane --host H';
    expect(() => parseConfig(config({ internal_port: 7444 }))).toThrow(
      'internal_port needs tls.control_plane',
    );
    // `tls.gate` alone (what the listener served before) is no fallback.
    expect(() => parseConfig(config({ internal_port: 7444, tls: { ca: 'certs/ca.pem', gate } }))).toThrow(
      fix,
    );
    const c = parseConfig(config({ internal_port: 7444, tls: { ...tls, gate } }));
    expect(c.internal_port).toBe(7444);
    expect(c.tls?.control_plane).toEqual(controlPlane);
    expect(c.tls?.gate).toEqual(gate);
    expect(parseConfig(config({ internal_port: 7444, tls })).internal_port).toBe(7444);
    expect(() =>
      parseConfig(config({ internal_port: 7444, tls: { ...tls, control_plane: { cert: 'x.pem' } } })),
    ).toThrow('key must be a file path');
  });

  it('refuses a host name or a host without a port', () => {
    expect(() => parseConfig(config({ internal_port: 7444, internal_host: 'gate.local', tls }))).toThrow(
      'internal_host must be an IP address',
    );
    expect(() => parseConfig(config({ internal_host: '127.0.0.1', tls }))).toThrow(
      'internal_host needs internal_port',
    );
  });
});

describe('failclosed.json jobs', () => {
  const config = (extra: object) => Buffer.from(JSON.stringify({ ...defaultConfig(), ...extra }));
  const tls = { ca: 'certs/ca.pem', gate: { cert: 'certs/gate.pem', key: 'certs/gate.key' } };
  const nats = { queue: 'nats', url: 'nats://127.0.0.1:4222' };

  it('takes the queue, and refuses in-process workers beside a separate Execution Layer', () => {
    expect(parseConfig(config({ jobs: { queue: 'local', concurrency: 3 } })).jobs).toEqual({
      queue: 'local',
      concurrency: 3,
    });
    expect(parseConfig(config({ jobs: { ...nats, workers: 2 } })).jobs).toMatchObject({ workers: 2 });
    expect(() =>
      parseConfig(config({ jobs: { ...nats, workers: 2 }, executor_url: 'https://127.0.0.1:7443', tls })),
    ).toThrow('jobs.workers runs workers over');
    expect(() => parseConfig(config({ jobs: { queue: 'kafka' } }))).toThrow('jobs.queue must be');
  });

  it('serve executor takes NATS workers only', () => {
    const base = {
      audience: 'a',
      listen: { host: '127.0.0.1', port: 0 },
      gate_url: 'https://127.0.0.1:7444',
      tls: { ca: 'ca.pem', cert: 'e.pem', key: 'e.key' },
      nonces: 'n.db',
    };
    const parse = (extra: object) =>
      parseExecutorConfig(Buffer.from(JSON.stringify({ ...base, ...extra })), '/etc/failclosed');
    expect(parse({ jobs: { ...nats, workers: 4 } }).jobs).toMatchObject({ queue: 'nats', workers: 4 });
    expect(() => parse({ jobs: { queue: 'local' } })).toThrow('jobs.queue must be "nats"');
    expect(parse({ log: { level: 'warn' }, metrics: { listen: '127.0.0.1:9464' } }).log).toEqual({
      level: 'warn',
    });
  });
});

describe('failclosed serve', () => {
  const run = async (argv: string[]) => {
    let err = '';
    const code = await runCli(argv, { out: () => undefined, err: (t) => void (err += t), env: {} });
    return { code, err };
  };

  it('knows only `serve executor|gate|ledger --config FILE` and `serve control-plane [--data DIR]`', async () => {
    for (const argv of [
      ['serve', 'executor'],
      ['serve', 'control-plane', '--config', 'x.json'],
      ['serve', 'control-plane', 'extra'],
      ['serve'],
    ]) {
      const r = await run(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err).toContain('serve executor|gate|ledger --config FILE | serve control-plane [--data DIR]');
    }
  });

  it('serve control-plane: each start condition refused on its own (internal_gates, a separate Execution Layer, the checkpoint key moved out)', () => {
    const full = {
      ...defaultConfig(),
      internal_port: 7444,
      internal_gates: true,
      executor_url: 'https://127.0.0.1:7443',
      checkpoints: { url: 'https://127.0.0.1:7460', vkey: 'x', timeout_ms: 5000 },
    } as unknown as EmbeddedConfig;
    expect(controlPlaneConfigGaps(full)).toEqual([]);
    expect(() => assertControlPlaneConfig(full)).not.toThrow();
    const gaps = (c: object) => controlPlaneConfigGaps(c as EmbeddedConfig).join('; ');
    expect(gaps({ ...full, internal_gates: undefined })).toMatch(/^`internal_gates: true`/);
    expect(gaps({ ...full, internal_gates: false })).toMatch(/^`internal_gates: true`/);
    expect(gaps({ ...full, executor_url: undefined })).toMatch(/^`executor_url` naming a separate/);
    // An Execution Layer listener of its own here (`tls.executor`) runs tools in this process.
    expect(gaps({ ...full, tls: { executor: { cert: 'c', key: 'k' } } })).toMatch(/^`executor_url` naming/);
    expect(gaps({ ...full, checkpoints: undefined })).toMatch(/^`checkpoints` naming the ledger process/);
    for (const c of [
      { ...full, checkpoints: undefined },
      { ...full, internal_gates: undefined },
    ])
      expect(() => assertControlPlaneConfig(c as unknown as EmbeddedConfig)).toThrow(
        /^serve control-plane: failclosed.json needs/,
      );
  });

  it('serve control-plane has no --standby (every Control Plane process on PostgreSQL serves at once)', async () => {
    const r = await run(['serve', 'control-plane', '--standby', '--data', '/nonexistent/cp']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('serve control-plane takes no --standby');
  });

  it('serve control-plane never makes a data directory, and refuses one that is not set up as the Control Plane alone', async () => {
    const missing = await run(['serve', 'control-plane', '--data', '/nonexistent/cp']);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('no data directory at /nonexistent/cp');
    expect(existsSync('/nonexistent/cp')).toBe(false);
    // The embedded default (SQLite, every role in one process, the checkpoint key here).
    const dir = mkdtempSync(join(tmpdir(), 'fc-serve-cp-'));
    try {
      await initDataDir(dir);
      const r = await run(['serve', 'control-plane', '--data', dir]);
      expect(r.code).toBe(1);
      expect(r.err).toContain('`internal_gates: true`');
      expect(r.err).toContain('`executor_url` naming a separate Execution Layer');
      expect(r.err).toContain('`checkpoints` naming the ledger process');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses to start over a configuration that does not parse', async () => {
    for (const role of ['executor', 'gate', 'ledger']) {
      const r = await run(['serve', role, '--config', `/nonexistent/${role}.json`]);
      expect(r.code).toBe(1);
      expect(r.err).toContain('ENOENT');
    }
  });
});
