/** SPEC §6 Secrets, OE-INV-009: references resolve only here, and values never appear in errors. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createEnvSecretResolver } from '../../src/execution/index.js';
import { FailclosedError } from '../../src/kernel/index.js';

const dir = mkdtempSync(join(tmpdir(), 'fc-secrets-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof FailclosedError) {
      return err.code;
    }
    throw err;
  }
  return undefined;
}

describe('createEnvSecretResolver', () => {
  it('resolves FC_SECRET_<NAME> variables and ignores everything else', () => {
    const r = createEnvSecretResolver({
      env: { FC_SECRET_API_KEY: 'v1', OTHER: 'nope', FC_SECRET_bad: 'x' },
    });
    expect(r.resolve('API_KEY')).toBe('v1');
    expect(r.knownValues()).toEqual(['v1']);
    expect(codeOf(() => r.resolve('OTHER'))).toBe('ERR_ADAPTER_UNAVAILABLE');
    expect(codeOf(() => r.resolve('bad'))).toBe('ERR_ADAPTER_UNAVAILABLE');
  });

  it('reads a JSON secrets file, which wins over the environment', () => {
    const file = join(dir, 'secrets.json');
    writeFileSync(file, JSON.stringify({ DB_PASSWORD: 'from-file', API_KEY: 'file-key' }));
    const r = createEnvSecretResolver({ env: { FC_SECRET_API_KEY: 'env-key' }, file });
    expect(r.resolve('DB_PASSWORD')).toBe('from-file');
    expect(r.resolve('API_KEY')).toBe('file-key');
    expect([...r.knownValues()].sort()).toEqual(['file-key', 'from-file']);
  });

  it('fails closed at creation on a malformed file, without quoting it', () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, '{"GOOD":"s3cr3t-value", "bad name": 1}');
    let message = '';
    try {
      createEnvSecretResolver({ file });
    } catch (err) {
      expect(err).toBeInstanceOf(FailclosedError);
      message = (err as Error).message;
    }
    expect(message).not.toBe('');
    expect(message).not.toContain('s3cr3t-value');
    expect(codeOf(() => createEnvSecretResolver({ file: join(dir, 'missing.json') }))).toBe(
      'ERR_ADAPTER_UNAVAILABLE',
    );
  });

  it('never puts a value in an error message', () => {
    const r = createEnvSecretResolver({ env: { FC_SECRET_A: 'topsecretvalue' } });
    expect(() => r.resolve('B')).toThrow(FailclosedError);
    expect(() => r.resolve('B')).not.toThrow(/topsecretvalue/);
  });
});
