/**
 * A Control Plane data directory whose checkpoints the ledger process signs (`checkpoints` in
 * `failclosed.json`; docs/deployment.md "The ledger process"; SPEC §1 separation of powers): the
 * checkpoint key leaves it through `failclosed ledger move-key`, the pinned vkey must be a valid
 * key named after the origin, and the data directory refuses to open while it still holds the
 * private key, or on a backend the ledger process cannot read. The running topology is in
 * test/e2e/distributed-one-machine.test.ts.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dataPaths, initDataDir, openCore, parseConfig } from '../../src/embedded/index.js';
import { runCli } from '../e2e/processes.js';

describe('checkpoints signed by the ledger process: the data directory side', () => {
  let work: string;
  let dir: string;
  let vkey: string;
  let origin: string;
  const config = (): Record<string, unknown> =>
    JSON.parse(readFileSync(dataPaths(dir).config, 'utf8')) as Record<string, unknown>;
  const tls = {
    ca: 'ca.pem',
    control_plane: { cert: 'control-plane.pem', key: 'control-plane.key' },
  };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'fc-checkpoints-'));
    dir = join(work, 'cp');
    await initDataDir(dir);
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('ledger move-key moves the key out (0600, never over a file), prints the vkey and the first entry, and refuses a second move', () => {
    const out = join(work, 'ledger', 'ledger.jwk');
    writeFileSync(join(work, 'taken.jwk'), 'x');
    const refused = runCli('ledger', 'move-key', '--out', join(work, 'taken.jwk'), '--data', dir);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/refusing to overwrite/);
    expect(existsSync(dataPaths(dir).ledgerKey)).toBe(true);
    // Nor through a symbolic link, dangling or not: the key would land where the link points.
    symlinkSync(join(work, 'elsewhere.jwk'), join(work, 'link.jwk'));
    const linked = runCli('ledger', 'move-key', '--out', join(work, 'link.jwk'), '--data', dir);
    expect(linked.code).toBe(1);
    expect(existsSync(join(work, 'elsewhere.jwk'))).toBe(false);
    expect(existsSync(dataPaths(dir).ledgerKey)).toBe(true);
    const r = runCli('ledger', 'move-key', '--out', out, '--data', dir);
    expect(r.code, r.err).toBe(0);
    const printed = JSON.parse(r.out) as {
      origin: string;
      vkey: string;
      first_entry_hash: string;
      key_file: string;
    };
    ({ vkey, origin } = printed);
    expect(vkey.startsWith(`${origin}+`)).toBe(true);
    // The ledger the key signs, for the ledger process's first_entry_hash (ledger-binding.json).
    expect(printed.first_entry_hash).toBe(
      (JSON.parse(readFileSync(join(dir, 'ledger-binding.json'), 'utf8')) as { first_entry_hash: string })
        .first_entry_hash,
    );
    expect(existsSync(dataPaths(dir).ledgerKey)).toBe(false);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const again = runCli('ledger', 'move-key', '--out', join(work, 'again.jwk'), '--data', dir);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/moved already/);
  });

  it('checkpoints must pin a valid vkey named after the origin, and name the certificate presented', () => {
    const base = { ...config(), tls };
    const parse = (checkpoints: unknown, t: unknown = tls): void => {
      parseConfig(Buffer.from(JSON.stringify({ ...base, tls: t, checkpoints })));
    };
    expect(() => parse({ url: 'https://127.0.0.1:7460', vkey })).not.toThrow();
    expect(() => parse({ url: 'https://127.0.0.1:7460', vkey: 'not+a+key' })).toThrow(/not a valid/);
    const other = `other.origin${vkey.slice(origin.length)}`;
    expect(() => parse({ url: 'https://127.0.0.1:7460', vkey: other })).toThrow(/not a valid|named after/);
    expect(() => parse({ url: 'http://127.0.0.1:7460', vkey })).toThrow(/https/);
    expect(() => parse({ url: 'https://127.0.0.1:7460', vkey, extra: 1 })).toThrow(/unknown field/);
    expect(() => parse({ url: 'https://127.0.0.1:7460', vkey }, { ca: 'ca.pem' })).toThrow(
      /needs tls.control_plane/,
    );
  });

  it('the data directory refuses to open on SQLite (the ledger process reads the shared ledger only), and while it holds the checkpoint key', async () => {
    writeFileSync(
      dataPaths(dir).config,
      JSON.stringify({ ...config(), tls, checkpoints: { url: 'https://127.0.0.1:7460', vkey } }),
    );
    await expect(openCore(dir)).rejects.toThrow(/needs the PostgreSQL backend/);
    // The key back in place beside `checkpoints`: two holders of the key is what this refuses.
    writeFileSync(dataPaths(dir).ledgerKey, readFileSync(join(work, 'ledger', 'ledger.jwk')));
    await expect(openCore(dir)).rejects.toThrow(/still holds the checkpoint key/);
  });
});
