/** Builtin and command adapters: the shared contract, argv templates, builtins (OE-INV-012/024). */
import { describe, expect, it } from 'vitest';
import {
  createBuiltinAdapter,
  createBwrapSandbox,
  createCommandAdapter,
  createDefaultBuiltinAdapter,
  createDefaultBuiltins,
  createEnvSecretResolver,
  parseArgvTemplate,
  renderArgv,
} from '../../src/execution/index.js';
import type { ToolAdapter, ToolExecutionSpec } from '../../src/execution/index.js';
import { FailclosedError } from '../../src/kernel/index.js';
import type { JsonValue } from '../../src/kernel/index.js';
import { runAdapterContract } from './adapter.contract.js';
import { constraints, never } from './support.js';

const NOW = 1_750_000_000_000;
const sandbox = createBwrapSandbox();

runAdapterContract('builtin', () => ({
  adapter: createBuiltinAdapter(
    {
      echo: (p) => Promise.resolve(p),
      slow: () => never(),
      loud: () => Promise.resolve('x'.repeat(5000)),
      failing: () => Promise.reject(new Error('boom')),
    },
    { now: () => NOW },
  ),
  echo: { type: 'builtin', function: 'echo' },
  slow: { type: 'builtin', function: 'slow' },
  loud: { type: 'builtin', function: 'loud' },
  failing: { type: 'builtin', function: 'failing' },
  malformed: { type: 'builtin', function: 42 },
}));

runAdapterContract('command (bwrap)', () => ({
  adapter: createCommandAdapter({ sandbox }),
  echo: { type: 'command', argv: ['/usr/bin/printf', '%s', '{message}'] },
  slow: { type: 'command', argv: ['/usr/bin/sleep', '30'] },
  loud: { type: 'command', argv: ['/usr/bin/yes'] },
  failing: { type: 'command', argv: ['/usr/bin/false'] },
  malformed: { type: 'command', argv: ['printf', '{message}'] },
}));

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof FailclosedError) return err.code;
    throw err;
  }
  return undefined;
}

describe('argv templates (OE-INV-012: no shell, one element per placeholder)', () => {
  const t = parseArgvTemplate(['/usr/bin/grep', '-e', '{pattern}', '--label={label}', '{file}'], undefined);

  it('fills placeholders with strings and integers, each as exactly one element', () => {
    expect(renderArgv(t, { pattern: 'a b; rm -rf / $(id)', label: 'x y', file: 42 })).toEqual([
      '/usr/bin/grep',
      '-e',
      'a b; rm -rf / $(id)',
      '--label=x y',
      '42',
    ]);
  });

  it('rejects missing, non-scalar, fractional and NUL-holding values', () => {
    for (const params of [
      { pattern: 'a', label: 'b' },
      { pattern: ['a'], label: 'b', file: 'c' },
      { pattern: { a: 1 }, label: 'b', file: 'c' },
      { pattern: true, label: 'b', file: 'c' },
      { pattern: 1.5, label: 'b', file: 'c' },
      { pattern: 'a\0b', label: 'b', file: 'c' },
    ] as JsonValue[]) {
      expect(
        code(() => renderArgv(t, params)),
        JSON.stringify(params),
      ).toBe('ERR_PARAMS_INVALID');
    }
    expect(code(() => renderArgv(t, ['x']))).toBe('ERR_PARAMS_INVALID');
  });

  it('rejects a value that would start an option unless the template opts in', () => {
    expect(code(() => renderArgv(t, { pattern: 'a', label: 'b', file: '--help' }))).toBe(
      'ERR_PARAMS_INVALID',
    );
    expect(code(() => renderArgv(t, { pattern: 'a', label: 'b', file: -1 }))).toBe('ERR_PARAMS_INVALID');
    // A dash after a literal prefix cannot start an option.
    expect(renderArgv(t, { pattern: 'a', label: '-b', file: 'c' })[3]).toBe('--label=-b');
    const optIn = parseArgvTemplate(['/usr/bin/expr', '{n}', '+', '1'], ['n']);
    expect(renderArgv(optIn, { n: -5 })).toEqual(['/usr/bin/expr', '-5', '+', '1']);
  });

  it('refuses templates whose program is not a literal absolute path', () => {
    for (const argv of [[], ['printf'], ['{prog}'], ['/usr/bin/{prog}'], 'sh -c x', [1], ['/bin/x', null]]) {
      expect(
        code(() => parseArgvTemplate(argv, undefined)),
        JSON.stringify(argv),
      ).toBe('ERR_ADAPTER_UNAVAILABLE');
    }
    expect(code(() => parseArgvTemplate(['/bin/x'], 'n'))).toBe('ERR_ADAPTER_UNAVAILABLE');
  });
});

describe('command adapter', () => {
  const adapter = createCommandAdapter({ sandbox });
  const run = (spec: ToolExecutionSpec, params: JsonValue, a: ToolAdapter = adapter) =>
    a.run({ tool: 't', spec, params, constraints: constraints(), signal: new AbortController().signal });

  it('passes shell metacharacters through as literal text (no shell)', async () => {
    const out = await run(
      { type: 'command', argv: ['/usr/bin/printf', '%s|', '{a}', '{b}'] },
      { a: '$(id -u)', b: '`ls`;echo hi' },
    );
    expect(out).toEqual({
      outcome: 'ok',
      result: { exit_code: 0, stdout: '$(id -u)|`ls`;echo hi|', stderr: '' },
    });
  });

  it('denies ERR_PARAMS_INVALID before running for a rejected value', async () => {
    expect(await run({ type: 'command', argv: ['/usr/bin/ls', '{dir}'] }, { dir: '-la' })).toMatchObject({
      outcome: 'deny',
      code: 'ERR_PARAMS_INVALID',
    });
  });

  it('hands secrets to the tool through its environment, resolved here', async () => {
    const secrets = createEnvSecretResolver({ env: { FC_SECRET_API_TOKEN: 'tok-123456' } });
    const spec = {
      type: 'command',
      argv: ['/usr/bin/printenv', 'TOKEN'],
      env_secrets: { TOKEN: 'API_TOKEN' },
    };
    const out = await adapter.run({
      tool: 't',
      spec,
      params: {},
      constraints: constraints(),
      secrets,
      signal: new AbortController().signal,
    });
    expect(out).toMatchObject({ outcome: 'ok', result: { stdout: 'tok-123456\n' } });
    const unknown = { ...spec, env_secrets: { TOKEN: 'MISSING' } };
    expect(
      await adapter.run({
        tool: 't',
        spec: unknown,
        params: {},
        constraints: constraints(),
        secrets,
        signal: new AbortController().signal,
      }),
    ).toMatchObject({ outcome: 'deny', code: 'ERR_ADAPTER_UNAVAILABLE' });
    expect(await run(spec, {})).toMatchObject({ outcome: 'deny', code: 'ERR_ADAPTER_UNAVAILABLE' });
  });

  it('passes the sandbox deny through when the sandbox is unavailable', async () => {
    const broken = createCommandAdapter({ sandbox: createBwrapSandbox({ bwrapPath: '/nonexistent/bwrap' }) });
    expect(await run({ type: 'command', argv: ['/usr/bin/true'] }, {}, broken)).toMatchObject({
      outcome: 'deny',
      code: 'ERR_SANDBOX_UNAVAILABLE',
    });
  });
});

describe('default builtins (the demo bundle contract)', () => {
  const adapter = createDefaultBuiltinAdapter({ now: () => NOW });
  const run = (tool: string, params: JsonValue) =>
    adapter.run({
      tool,
      spec: { type: 'builtin' },
      params,
      constraints: constraints(),
      signal: new AbortController().signal,
    });

  it('offers echo, add, transfer_funds, delete_records, send_email, get_time and read_inbox', () => {
    expect(Object.keys(createDefaultBuiltins()).sort()).toEqual(
      ['add', 'delete_records', 'echo', 'get_time', 'read_inbox', 'send_email', 'transfer_funds'].sort(),
    );
  });

  it('echo and add', async () => {
    expect(await run('echo', { x: [1, 'a'] })).toEqual({ outcome: 'ok', result: { x: [1, 'a'] } });
    expect(await run('add', { a: 2, b: 40 })).toEqual({ outcome: 'ok', result: { sum: 42 } });
    expect(await run('add', { a: '2', b: 40 })).toMatchObject({
      outcome: 'deny',
      code: 'ERR_PARAMS_INVALID',
    });
  });

  it('transfer_funds gives deterministic receipts per adapter instance', async () => {
    const p = { from_account: 'A-1', to_account: 'B-2', amount: 5, currency: 'EUR', memo: 'rent' };
    const first = await run('transfer_funds', p);
    const second = await run('transfer_funds', p);
    const fresh = createDefaultBuiltinAdapter({ now: () => NOW });
    const again = await fresh.run({
      tool: 'transfer_funds',
      spec: { type: 'builtin' },
      params: p,
      constraints: constraints(),
      signal: new AbortController().signal,
    });
    expect(first).toMatchObject({
      outcome: 'ok',
      result: { status: 'completed', sequence: 1, amount: 5 },
    });
    expect(again).toEqual(first);
    expect(second).not.toEqual(first);
    for (const bad of [
      { ...p, amount: 0 },
      { ...p, currency: 'euro' },
      { ...p, from_account: 3 },
    ]) {
      expect(await run('transfer_funds', bad)).toMatchObject({ outcome: 'deny', code: 'ERR_PARAMS_INVALID' });
    }
  });

  it('delete_records, send_email and get_time (injected clock)', async () => {
    expect(await run('delete_records', { table: 'users', ids: ['a', 'b', 'a'] })).toMatchObject({
      outcome: 'ok',
      result: { table: 'users', deleted: 2, simulated: true },
    });
    expect(await run('delete_records', { table: 'users', ids: [] })).toMatchObject({
      code: 'ERR_PARAMS_INVALID',
    });
    expect(await run('send_email', { to: 'a@example.com', subject: 's', body: 'b' })).toMatchObject({
      outcome: 'ok',
      result: { accepted: ['a@example.com'] },
    });
    expect(await run('get_time', {})).toEqual({
      outcome: 'ok',
      result: { now_ms: NOW, iso: new Date(NOW).toISOString() },
    });
  });

  it('denies ERR_ADAPTER_UNAVAILABLE for a tool it does not have', async () => {
    expect(await run('format_disk', {})).toMatchObject({ outcome: 'deny', code: 'ERR_ADAPTER_UNAVAILABLE' });
  });
});
