/**
 * Policy that cannot run does not load: every tool's adapter spec is checked strictly when a
 * bundle is loaded (build, activation and every load from the store), each problem named with
 * its tool and path. (SPEC §6 "Policy as code", OE-INV-005/006/012/024)
 */
import { describe, expect, it } from 'vitest';
import { checkAdapterSpecs, loadBundle } from '../../src/policy/index.js';
import type { ToolSpec } from '../../src/policy/index.js';
import { MAX_OUTPUT_BYTES } from '../../src/kernel/index.js';
import { ECHO_TOOL, PAY_TOOL, baseDoc, mustLoad } from './fixtures.js';

const LS_TOOL = {
  ...ECHO_TOOL,
  adapter: {
    type: 'command',
    argv: ['/usr/bin/ls', '-la', '--', '{message}'],
    limits: { timeout_ms: 5000, max_output_bytes: 65536, network: false },
  },
};

function withEcho(adapter: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...baseDoc(), tools: [{ ...ECHO_TOOL, adapter, ...extra }, PAY_TOOL] };
}

function reasonOf(doc: Record<string, unknown>, builtins?: readonly string[]): string {
  const r = loadBundle(JSON.stringify(doc), undefined, builtins === undefined ? {} : { builtins });
  if (!('outcome' in r)) throw new Error('loaded');
  expect(r.code).toBe('ERR_POLICY_BUNDLE_INVALID');
  return r.reason;
}

const spec = (adapter: unknown, over: Partial<ToolSpec> = {}): ToolSpec =>
  ({ ...ECHO_TOOL, adapter, ...over }) as unknown as ToolSpec;

describe('adapter specs at load (issue 8 point 9)', () => {
  it('loads a valid command spec', () => {
    expect(mustLoad(withEcho(LS_TOOL.adapter)).hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('rejects a misspelled limits.timeout, naming tool and path', () => {
    const reason = reasonOf(withEcho({ ...LS_TOOL.adapter, limits: { timeout: 5000 } }));
    expect(reason).toContain('tool "echo": adapter.limits: unknown key "timeout"');
  });

  it('rejects a relative argv[0]', () => {
    const reason = reasonOf(withEcho({ type: 'command', argv: ['ls', '{message}'] }));
    expect(reason).toContain('tool "echo": adapter.argv[0]: must be a literal absolute path');
  });

  it('rejects the adapter type "comand"', () => {
    const reason = reasonOf(withEcho({ type: 'comand', argv: ['/usr/bin/ls'] }));
    expect(reason).toContain('tool "echo": adapter.type: unknown adapter type "comand"');
  });
});

describe('checkAdapterSpecs', () => {
  const cases: [string, ToolSpec, string][] = [
    [
      'a timeout over 25 s',
      spec({ type: 'builtin', limits: { timeout_ms: 25_001 } }),
      'adapter.limits.timeout_ms',
    ],
    [
      'an output cap past what an answer carries',
      spec({ type: 'builtin', limits: { max_output_bytes: MAX_OUTPUT_BYTES + 1 } }),
      'adapter.limits.max_output_bytes',
    ],
    [
      'a fractional timeout',
      spec({ type: 'builtin', limits: { timeout_ms: 1.5 } }),
      'adapter.limits.timeout_ms',
    ],
    ['a string network', spec({ type: 'builtin', limits: { network: 'no' } }), 'adapter.limits.network'],
    ['an unknown top-level key', spec({ type: 'builtin', name: 'echo' }), 'unknown key "name"'],
    [
      'a placeholder naming no parameter',
      spec({ type: 'command', argv: ['/usr/bin/ls', '{mesage}'] }),
      'adapter.argv[1]: placeholder {mesage} names no parameter',
    ],
    [
      'a placeholder over an optional parameter',
      spec(
        { type: 'command', argv: ['/usr/bin/ls', '{message}'] },
        { parameters: { ...ECHO_TOOL.parameters, required: [] } },
      ),
      'is not required',
    ],
    [
      'a placeholder in argv[0]',
      spec({ type: 'command', argv: ['/usr/bin/{message}'] }),
      'adapter.argv[0]: must be a literal absolute path',
    ],
    ['a non-normalized program', spec({ type: 'command', argv: ['/usr/bin/../bin/ls'] }), 'normalized'],
    ['an empty argv', spec({ type: 'command', argv: [] }), 'adapter.argv'],
    [
      'allow_leading_dash naming no placeholder',
      spec({ type: 'command', argv: ['/usr/bin/ls', '{message}'], allow_leading_dash: ['msg'] }),
      'adapter.allow_leading_dash[0]',
    ],
    [
      'a misspelled sandbox grant',
      spec({ type: 'command', argv: ['/usr/bin/ls'], limits: { fs_reads: ['/data'] } }),
      'unknown key "fs_reads"',
    ],
    [
      'a relative granted path',
      spec({ type: 'command', argv: ['/usr/bin/ls'], limits: { fs_read: ['data'] } }),
      'adapter.limits.fs_read[0]',
    ],
    [
      'a granted path in the egress runtime directory (proxy sockets live there, OE-INV-011)',
      spec({
        type: 'command',
        argv: ['/usr/bin/ls'],
        limits: { fs_write: ['/srv', '/tmp/failclosed-egress-0'] },
      }),
      'adapter.limits.fs_write[1]',
    ],
    [
      'a granted path above the temporary directory',
      spec({ type: 'command', argv: ['/usr/bin/ls'], limits: { fs_read: ['/tmp'] } }),
      'adapter.limits.fs_read[0]',
    ],
    [
      'an egress entry that is not host:port',
      spec({ type: 'command', argv: ['/usr/bin/ls'], limits: { network: true, egress: ['a.example'] } }),
      'adapter.limits.egress[0]: must be host:port',
    ],
    [
      'network without an egress allowlist (the host network is never shared)',
      spec({ type: 'command', argv: ['/usr/bin/ls'], limits: { network: true } }),
      'adapter.limits.egress: network needs an egress allowlist',
    ],
    [
      'an LD_ secret variable',
      spec({ type: 'command', argv: ['/usr/bin/ls'], env_secrets: { LD_PRELOAD: 'X' } }),
      'adapter.env_secrets',
    ],
    [
      'a dry run of an unknown type',
      spec({ type: 'builtin' }, { preview: { irreversible: true, dry_run: { type: 'command' } } }),
      'preview.dry_run.type: unknown adapter type "command"',
    ],
    [
      'a dry run naming no parameter',
      spec(
        { type: 'builtin' },
        { preview: { irreversible: true, dry_run: { type: 'describe', objects: 'ids' } } },
      ),
      'preview.dry_run.objects',
    ],
  ];
  for (const [what, tool, expected] of cases) {
    it(`rejects ${what}`, () => {
      const problems = checkAdapterSpecs([tool]);
      expect(problems.join('\n')).toContain(expected);
      expect(problems.every((p) => p.startsWith('tool "echo": '))).toBe(true);
    });
  }

  it('checks builtin names against the offered functions', () => {
    expect(checkAdapterSpecs([spec({ type: 'builtin', function: 'echo' })], { builtins: ['echo'] })).toEqual(
      [],
    );
    expect(checkAdapterSpecs([spec({ type: 'builtin', function: 'ecko' })], { builtins: ['echo'] })).toEqual([
      'tool "echo": adapter.function: no builtin function "ecko"',
    ]);
    // Without a function the tool name is the function.
    expect(checkAdapterSpecs([spec({ type: 'builtin' }, { name: 'other' })], { builtins: ['echo'] })).toEqual(
      ['tool "other": adapter: no builtin function "other"'],
    );
    expect(reasonOf(withEcho({ type: 'builtin', function: 'ecko' }), ['echo'])).toContain(
      'no builtin function',
    );
  });

  it('accepts network with an egress allowlist of host:port entries (OE-INV-011)', () => {
    expect(
      checkAdapterSpecs([
        spec({
          type: 'command',
          argv: ['/usr/bin/ls'],
          limits: { network: true, egress: ['api.example.com:443', '127.0.0.1:8080', '[::1]:80'] },
        }),
      ]),
    ).toEqual([]);
  });

  it('accepts every spec of the demo bundle shape', () => {
    expect(checkAdapterSpecs([spec(LS_TOOL.adapter)])).toEqual([]);
    expect(
      checkAdapterSpecs([
        spec(
          {
            type: 'builtin',
            function: 'echo',
            limits: { timeout_ms: 25_000, egress: ['x'], fs_write: ['/tmp/a'] },
          },
          { preview: { irreversible: false, dry_run: { type: 'describe', objects: 'message' } } },
        ),
      ]),
    ).toEqual([]);
  });
});

describe('http adapter specs (OE-INV-011)', () => {
  const http = (over: Record<string, unknown> = {}): ToolSpec =>
    spec({
      type: 'http',
      method: 'GET',
      url: 'https://api.example.com/search?q={message}',
      headers: { Authorization: 'Bearer {secret:API_TOKEN}' },
      limits: { network: true, egress: ['api.example.com:443'] },
      ...over,
    });

  it('accepts a literal origin on the allowlist, placeholders in path and query, secrets in headers', () => {
    expect(checkAdapterSpecs([http()])).toEqual([]);
  });

  it.each([
    ['a templated host', { url: 'https://{message}/x' }, 'adapter.url: must be http(s)://HOST'],
    [
      'a secret in the url',
      { url: 'https://api.example.com/x?k={secret:API_TOKEN}' },
      'a secret may not be placed in the url',
    ],
    [
      'a destination not on its allowlist',
      { url: 'https://other.example.com/x' },
      'must grant network and list other.example.com:443',
    ],
    ['no network granted', { limits: { egress: ['api.example.com:443'] } }, 'must grant network'],
    [
      'a placeholder naming no parameter',
      { url: 'https://api.example.com/{nope}' },
      'placeholder {nope} names no parameter',
    ],
    ['a header failclosed sets', { headers: { Host: 'evil' } }, 'adapter.headers.Host: is set by failclosed'],
    ['an unknown method', { method: 'TRACE' }, 'adapter.method'],
  ])('refuses %s', (_what, over, reason) => {
    expect(checkAdapterSpecs([http(over)]).join('\n')).toContain(reason);
  });
});
