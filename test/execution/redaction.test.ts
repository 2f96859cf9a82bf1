/** OE-INV-010, OE-INV-009, SPEC §7 scenario 16: secrets and patterns never leave in plaintext. */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createRedactor, REDACTED_SECRET, secretForms } from '../../src/execution/index.js';
import { canonicalize } from '../../src/kernel/index.js';

const SECRET = 'hunter2-Sup3r$ecret/value';

describe('createRedactor: known secret values', () => {
  const r = createRedactor({ secrets: () => [SECRET] });

  it('replaces the exact value in strings, keys and nested values', () => {
    const out = r.redact({ a: `x${SECRET}y`, [SECRET]: [SECRET, { b: SECRET }] });
    const text = JSON.stringify(out);
    expect(text).not.toContain(SECRET);
    expect(text).toContain(REDACTED_SECRET);
  });

  it('replaces base64, base64url, hex, URL- and JSON-escaped forms', () => {
    const b = Buffer.from(SECRET);
    const forms = [
      b.toString('base64'),
      b.toString('base64url'),
      b.toString('hex'),
      b.toString('hex').toUpperCase(),
      encodeURIComponent(SECRET),
    ];
    for (const f of forms) {
      const out = r.redactText(`prefix ${f} suffix`);
      expect(out, f).not.toContain(f);
      expect(out).toContain(REDACTED_SECRET);
    }
  });

  it('finds the secret inside a larger base64 blob at any byte alignment', () => {
    for (const prefix of ['', 'a', 'ab', 'abc', 'abcd']) {
      const blob = Buffer.from(`${prefix}${SECRET}tail`).toString('base64');
      expect(r.redactText(blob)).toContain(REDACTED_SECRET);
    }
  });

  it('redacts numbers whose text contains a secret', () => {
    const pin = createRedactor({ secrets: () => ['987654'] });
    expect(pin.redact({ n: 19876543 })).toEqual({ n: REDACTED_SECRET });
    expect(pin.redact({ n: 12 })).toEqual({ n: 12 });
  });

  it('reads the secret list on every call (rotation)', () => {
    let current = ['first-secret-1'];
    const rot = createRedactor({ secrets: () => current });
    current = ['second-secret-2'];
    expect(rot.redactText('second-secret-2 first-secret-1')).toBe(`${REDACTED_SECRET} first-secret-1`);
  });

  it('treats regex metacharacters in secrets literally', () => {
    const meta = createRedactor({ secrets: () => ['.*'] });
    expect(meta.redactText('abc')).toBe('abc');
    expect(meta.redactText('a.*c')).toBe(`a${REDACTED_SECRET}c`);
  });

  it('never leaves the secret in output (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 6, maxLength: 40 }),
        fc.string(),
        fc.string(),
        (secret, pre, post) => {
          const red = createRedactor({ secrets: () => [secret], patterns: [] });
          return !red.redactText(pre + secret + post).includes(secret);
        },
      ),
    );
  });

  it('keeps a member named __proto__ as a member (an upstream may answer one): never dropped, never a prototype', () => {
    for (const text of ['{"__proto__":"x","a":1}', '{"__proto__":{"b":2},"a":1}']) {
      const out = r.redact(JSON.parse(text) as never) as Record<string, unknown>;
      expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
      expect(Object.keys(out)).toEqual(['__proto__', 'a']);
      expect(canonicalize(out as never)).toBe(canonicalize(JSON.parse(text) as never));
    }
  });

  it('rejects values that are not plain JSON', () => {
    expect(() => r.redact({ a: Number.NaN })).toThrow(TypeError);
    expect(() => r.redact(new Map() as never)).toThrow(TypeError);
    let deep: unknown = 'x';
    for (let i = 0; i < 100; i++) deep = [deep];
    expect(() => r.redact(deep as never)).toThrow(TypeError);
  });

  it('lists the exact secret among its forms', () => {
    expect(secretForms(SECRET)).toContain(SECRET);
  });
});

describe('createRedactor: patterns', () => {
  const r = createRedactor({ secrets: () => [] });
  const cases: Record<string, string> = {
    aws_access_key_id: 'key AKIAIOSFODNN7EXAMPLE here',
    aws_secret_access_key: 'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    bearer_token: 'Authorization: Bearer abcdef0123456789.xyz',
    private_key_block: '-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----',
    jwt: 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl',
    github_token: 'ghp_0123456789abcdefghijABCDEFGHIJ012345',
    slack_token: 'xoxb-1234567890-abcdefghij',
    credential_assignment: 'password=correcthorse',
  };
  for (const [name, text] of Object.entries(cases)) {
    it(`redacts ${name}`, () => {
      const out = r.redactText(text);
      expect(out).toContain(`[REDACTED:${name}]`);
    });
  }

  it('keeps emails unless the email pattern is enabled', () => {
    expect(r.redactText('mail a.b@example.com')).toContain('a.b@example.com');
    const withEmail = createRedactor({ secrets: () => [], patterns: ['email'] });
    expect(withEmail.redactText('mail a.b@example.com')).toBe('mail [REDACTED:email]');
  });

  it('redacts an unterminated private key block to the end', () => {
    expect(r.redactText('x -----BEGIN PRIVATE KEY-----\nMIIB')).toBe('x [REDACTED:private_key_block]');
  });

  it('refuses unknown pattern names', () => {
    expect(() => createRedactor({ secrets: () => [], patterns: ['nope' as never] })).toThrow(TypeError);
  });

  it('leaves ordinary text alone', () => {
    expect(r.redact({ msg: 'transfer of 100 EUR completed' })).toEqual({
      msg: 'transfer of 100 EUR completed',
    });
  });
});
