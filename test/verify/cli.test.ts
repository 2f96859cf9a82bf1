/** `runVerifyCli` (SPEC §5 verify.sh entry point): exit 0 / 1 / 2, text and --json output, flags. */
import { createPublicKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { vkeyFor } from '../../src/kernel/index.js';
import { signingKeyFromSeed } from '../../src/kernel/signing/index.js';
import { ORIGIN } from '../ledger/fixtures.js';
import { runVerifyCli, type VerifyCliIo, type VerifyReport } from '../../src/verify/index.js';
import { makeBundle, mutable, text } from './helpers.js';

function io(files: Record<string, string>): VerifyCliIo & { stdout: string[]; stderr: string[] } {
  const stdout: string[] = [];
  const stderr: string[] = [];
  return {
    stdout,
    stderr,
    out: (t) => stdout.push(t),
    err: (t) => stderr.push(t),
    readFile: (p) => {
      const f = files[p];
      if (f === undefined) throw new Error('ENOENT');
      return Buffer.from(f);
    },
  };
}

describe('runVerifyCli', () => {
  it('exit 0 on an intact bundle, 1 on a tampered one, with a JSON report naming the entry', async () => {
    const b = await makeBundle(8);
    const bad = mutable(b.text);
    bad['entries'][2].tenant = 'x';
    const files = { 'ok.json': b.text, 'bad.json': text(bad) };
    expect(await runVerifyCli(['ok.json', '--trusted-key', b.vkey], io(files))).toBe(0);
    const out = io(files);
    expect(await runVerifyCli(['bad.json', '--json', '--trusted-key', b.vkey], out)).toBe(1);
    const report = JSON.parse(out.stdout.join('')) as VerifyReport;
    expect(report.firstViolation).toMatchObject({ code: 'ENTRY_HASH_MISMATCH', index: 2 });
  });

  it('honours --invariant, --since and --trusted-key', async () => {
    const b = await makeBundle(8);
    const files = { 'b.json': b.text, 'cp.txt': b.checkpoints.at(-1)! };
    expect(
      await runVerifyCli(['b.json', '--invariant', 'OE-INV-009', '--trusted-key', b.vkey], io(files)),
    ).toBe(0);
    expect(await runVerifyCli(['b.json', '--since', 'cp.txt', '--trusted-key', b.vkey], io(files))).toBe(0);
    const otherKey = vkeyFor(ORIGIN, createPublicKey(signingKeyFromSeed(Buffer.alloc(32, 42)).privateKey));
    expect(await runVerifyCli(['b.json', '--trusted-key', otherKey], io(files))).toBe(1);
    // Repeatable: one pinned key that signed the checkpoint suffices.
    expect(
      await runVerifyCli(['b.json', '--trusted-key', otherKey, '--trusted-key', b.vkey], io(files)),
    ).toBe(0);
  });

  it('exit 3 without pinned roots; --trust-bundle-keys passes and says so; it cannot be mixed with pins', async () => {
    const b = await makeBundle(5);
    const files = { 'b.json': b.text };
    const plain = io(files);
    expect(await runVerifyCli(['b.json'], plain)).toBe(3);
    expect(plain.stdout.join('')).toContain('NOT VERIFIED: no pinned trust roots');
    const own = io(files);
    expect(await runVerifyCli(['b.json', '--trust-bundle-keys'], own)).toBe(0);
    expect(own.stdout.join('')).toContain("BUNDLE'S OWN KEYS");
    expect(await runVerifyCli(['b.json', '--trust-bundle-keys', '--trusted-key', b.vkey], io(files))).toBe(2);
    expect(await runVerifyCli(['b.json', '--trust', 'missing.json'], io(files))).toBe(2);
  });

  it('exit 2 on unusable input or arguments', async () => {
    const files = { 'junk.json': 'not json' };
    for (const argv of [
      [],
      ['missing.json'],
      ['junk.json'],
      ['junk.json', '--bogus'],
      ['a', 'b'],
      ['junk.json', '--since'],
      ['junk.json', '--trust'],
      ['junk.json', '--trusted-key'],
    ]) {
      expect(await runVerifyCli(argv, io(files))).toBe(2);
    }
  });
});
