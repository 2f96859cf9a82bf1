/**
 * SPEC §7 scenario 17 end to end: command tools that try to read host files or open a network
 * connection, approved by policy and run through the real Gate, Control Plane, envelope and
 * bubblewrap sandbox (OE-INV-012/024, OE-INV-006). The tool process runs, but only inside the
 * sandbox: the host file does not exist there (`ERR_TOOL_FAILED`, nothing of it returned), and
 * the network probe (which reports instead of failing, to prove it ran) finds only an empty
 * loopback and no route, while the host's listener never sees a connection.
 *
 * Beside it, the output limit (OE-INV-006, docs/adapters.md "Output limits"): a command's result
 * as large as the default `max_output_bytes` reaches the client whole (its answer was one the
 * client could not read: `unknown` embedded, withheld by a separate Execution Layer), and one byte
 * more is withheld `ERR_TOOL_OUTPUT_LIMIT`.
 *
 * In every topology (harness.ts): `distributed` runs the tools in a separate Execution Layer
 * (`startExecutorNode`), which compiles the bundle it fetched from the Gate process and starts
 * the same sandbox; there "the Gate itself" is the Gate process's public listener.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoPolicyDir } from '../../src/embedded/index.js';
import type { E2e } from './harness.js';
import { ALL_TOPOLOGIES, session, startE2e } from './harness.js';

let work: string;
let listener: Server;
let connections = 0;
const secretFile = (): string => join(work, 'host-secret.txt');
const SECRET = 'host-only-content-7f3a';
// Reports instead of failing, so the test sees that the probe really ran and what stopped it.
const PROBE = [
  'import socket, sys',
  'try:',
  '    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)',
  '    print("connected")',
  'except OSError as e:',
  '    print("blocked", type(e).__name__, e.errno)',
].join('\n');
const FILL = "import sys; sys.stdout.write('a' * int(sys.argv[1]))";
/** The default output limit (`max_output_bytes`), and the canonical result of `fill_output` around it. */
const OUTPUT_LIMIT = 1024 * 1024;
const FILL_OVERHEAD = JSON.stringify({ exit_code: 0, stderr: '', stdout: '' }).length;

function sandboxPolicyDir(): string {
  const dir = join(work, 'policy');
  cpSync(demoPolicyDir(), dir, { recursive: true });
  const tool = (name: string, argv: string[], properties: Record<string, unknown>, required: string[]) =>
    writeFileSync(
      join(dir, 'tools', `${name}.json`),
      JSON.stringify({
        name,
        description: `scenario 17 probe: ${name}`,
        risk: 'low',
        adapter: {
          type: 'command',
          argv,
          limits: { timeout_ms: 5000, max_output_bytes: 65536, network: false },
        },
        parameters: { type: 'object', properties, required, additionalProperties: false },
      }),
    );
  tool('read_file', ['/usr/bin/cat', '--', '{path}'], { path: { type: 'string', maxLength: 256 } }, ['path']);
  // Writes `n` bytes of `a` to stdout, under the default output limit (no `max_output_bytes`).
  writeFileSync(
    join(dir, 'tools', 'fill_output.json'),
    JSON.stringify({
      name: 'fill_output',
      description: 'writes n bytes',
      risk: 'low',
      adapter: {
        type: 'command',
        argv: ['/usr/bin/python3', '-c', FILL, '{n}'],
        limits: { timeout_ms: 10_000, network: false },
      },
      parameters: {
        type: 'object',
        properties: { n: { type: 'integer', minimum: 0, maximum: 4_000_000 } },
        required: ['n'],
        additionalProperties: false,
      },
    }),
  );
  tool(
    'net_probe',
    ['/usr/bin/python3', '-c', PROBE, '{host}', '{port}'],
    { host: { type: 'string', maxLength: 64 }, port: { type: 'integer', minimum: 1, maximum: 65535 } },
    ['host', 'port'],
  );
  appendFileSync(
    join(dir, 'schema.cedarschema'),
    `
action "read_file" appliesTo { principal: Agent, resource: Tenant, context: { params: { path: String }, risk: String, tainted: Bool } };
action "net_probe" appliesTo { principal: Agent, resource: Tenant, context: { params: { host: String, port: Long }, risk: String, tainted: Bool } };
action "fill_output" appliesTo { principal: Agent, resource: Tenant, context: { params: { n: Long }, risk: String, tainted: Bool } };
`,
  );
  writeFileSync(
    join(dir, 'policies', 'allow-sandbox-probes.cedar'),
    '@reason("scenario 17 probes")\npermit (principal, action in [Action::"read_file", Action::"net_probe", Action::"fill_output"], resource);\n',
  );
  return dir;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'fc-e2e-sandbox-'));
  writeFileSync(secretFile(), SECRET);
  sandboxPolicyDir();
  listener = createServer((socket) => {
    connections += 1;
    socket.destroy();
  });
  await new Promise<void>((done) => listener.listen(0, '127.0.0.1', done));
});

afterAll(async () => {
  await new Promise<void>((done) => listener.close(() => done()));
  rmSync(work, { recursive: true, force: true });
});

describe.each(ALL_TOPOLOGIES)(
  '%s topology: scenario 17: the sandbox blocks host files and the network',
  (topology) => {
    let e2e: E2e;

    beforeAll(async () => {
      e2e = await startE2e({ topology, policyDir: join(work, 'policy') });
    }, 60_000);

    afterAll(async () => {
      await e2e?.close();
    });

    const call = (tool: string, params: Record<string, string | number>) =>
      e2e.client().call(tool, params, { session: session() });

    it('control: a file that exists inside the sandbox (/usr) is read', async () => {
      const r = await call('read_file', { path: '/usr/lib/os-release' });
      expect(r).toMatchObject({ outcome: 'executed', result: { exit_code: 0 } });
    });

    // [what, path, a marker its content holds on the host (checked there when readable), host-readable]
    it.each([
      ['/etc/shadow', (): string => '/etc/shadow', 'root:', false],
      ['/etc/passwd', (): string => '/etc/passwd', 'root:', true],
      ['a host file outside the granted paths', (): string => secretFile(), SECRET, true],
      ['the repository', (): string => resolve('package.json'), '"name": "failclosed"', true],
      ['the data directory key', (): string => join(e2e.dir, 'keys', 'issuer.jwk'), '"kty"', true],
    ] as const)(
      'scenario 17: reading %s is blocked (ERR_TOOL_FAILED, nothing of it returned)',
      async (_what, path, marker, hostReadable) => {
        const target = path();
        // Control: the content is really there on the host, so its absence below means something.
        if (hostReadable) expect(readFileSync(target, 'utf8')).toContain(marker);
        const before = e2e.runs.get('read_file') ?? 0;
        const r = await call('read_file', { path: target });
        expect(r).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_FAILED' });
        // The tool ran only inside the sandbox, where the host file does not exist.
        expect(e2e.runs.get('read_file')).toBe(before + 1);
        expect(JSON.stringify(r)).not.toContain(JSON.stringify(marker).slice(1, -1));
      },
    );

    const probe = async (host: string, port: number): Promise<string> => {
      const r = await call('net_probe', { host, port });
      expect(r).toMatchObject({ outcome: 'executed', result: { exit_code: 0 } });
      return r.outcome === 'executed' ? String((r.result as { stdout: unknown }).stdout) : '';
    };

    it('scenario 17: a connection to a host loopback service is blocked; the service sees nothing', async () => {
      const port = (listener.address() as AddressInfo).port;
      const seen = connections;
      expect(await probe('127.0.0.1', port)).toMatch(/^blocked ConnectionRefusedError/);
      expect(connections).toBe(seen);
    });

    it('a result as large as the default output limit reaches the client whole; one byte more is withheld', async () => {
      // The whole limit is the result's: the answer around it (ids, receipt) never makes it one
      // the client (or the Gate, from a separate Execution Layer) cannot read.
      const n = OUTPUT_LIMIT - FILL_OVERHEAD;
      const before = e2e.runs.get('fill_output') ?? 0;
      const r = await call('fill_output', { n });
      expect(r.outcome).toBe('executed');
      const stdout = r.outcome === 'executed' ? (r.result as { stdout: string }).stdout : '';
      expect(stdout).toBe('a'.repeat(n));
      const over = await call('fill_output', { n: n + 1 });
      expect(over).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_OUTPUT_LIMIT' });
      expect(JSON.stringify(over)).not.toContain('aaaa');
      expect(e2e.runs.get('fill_output')).toBe(before + 2);
    });

    it('scenario 17: a connection to the Gate itself or an outside address is blocked', async () => {
      expect(await probe('127.0.0.1', Number(new URL(e2e.instance.url).port))).toMatch(
        /^blocked ConnectionRefusedError/,
      );
      // Only `lo` exists in the sandbox: no route anywhere else.
      expect(await probe('192.0.2.1', 80)).toMatch(/^blocked OSError 101/);
      // Control: the same probe from the host reaches the host service.
      const port = (listener.address() as AddressInfo).port;
      const seen = connections;
      await new Promise<void>((done, fail) => {
        const s = connect(port, '127.0.0.1', () => {
          s.destroy();
          done();
        });
        s.once('error', fail);
      });
      await expect.poll(() => connections).toBe(seen + 1);
    });
  },
);
