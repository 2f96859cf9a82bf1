/**
 * MCP gateway benchmark (docs/mcp.md "Upstream servers"; SPEC §8, §2 step 7): one tool of one
 * upstream MCP server, `read_text_file` of the official `@modelcontextprotocol/server-filesystem`
 * reading a small file, called by the official SDK client (`@modelcontextprotocol/client`) in
 * five ways, all measured in the same run:
 *   1. direct, over one long-lived stdio session (what a client does without a gateway);
 *   2. direct, one fresh upstream process per call, with the exchange the gateway has with it
 *      (initialize, `tools/list`, `tools/call`, kill): the fair baseline, since every governed
 *      call launches its own upstream;
 *   3. the Execution Layer's MCP adapter alone (`createMcpAdapter`, as the bundle pins the tool):
 *      the same per-call process, launched inside bubblewrap, its listed definition hashed and
 *      compared with the pin, no gate;
 *   4. governed: the same tool (`files.read_text_file`) through the embedded gate's Streamable
 *      HTTP MCP endpoint on its SQLite default, a registered client's key token per request, a
 *      policy that allows the call: authentication, decision, envelope, ledger, execution as
 *      above, receipt; at 1 client and at `BENCH_CLIENTS` (4) clients.
 * The load generator runs in its own process (a child of this one; the gate and its sandboxed
 * upstreams run in and under this one). Each phase runs `BENCH_RUNS` times (default 3) for
 * `BENCH_PHASE_MS` (default 5 s) and the medians are printed. A phase starts measuring once
 * every client's first call (its cold start) ended and `BENCH_WARMUP_MS` (a quarter of the
 * phase, at most 1 s) passed; a call is measured when it ends inside the phase (calls last about
 * a second, so counting only those that also started inside would understate the rate), and the
 * phase runs on until `BENCH_MIN_CALLS` (3) were
 * measured. Then come the ratios governed / direct per call and governed / direct long-lived,
 * and the split of a governed call's p50 between the upstream, the sandbox and the gate. The
 * governed phases also print this process's CPU time per call (`gate CPU`: the gate, its
 * Execution Layer and the SDK client that speaks to the upstream; not the upstream's own).
 * Any call that did not succeed is printed with its code and makes the process exit 1.
 * Run: `npm run bench:mcp`.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { runCli } from '../../src/cli/run.js';
import { signClientToken } from '../../src/client/index.js';
import {
  DEMO_CLIENT,
  announceServer,
  initDataDir,
  readClientFile,
  startEmbedded,
} from '../../src/embedded/index.js';
import { createMcpAdapter } from '../../src/execution/index.js';
import type { ExecutionConstraints, ToolExecutionSpec } from '../../src/execution/index.js';
import { constraintsFor } from '../../src/control-plane/index.js';
import { isDeny } from '../../src/kernel/index.js';
import type { JsonObject } from '../../src/kernel/index.js';
import type { ToolSpec } from '../../src/policy/index.js';
import { importSigningKeyJwk } from '../../src/kernel/signing/index.js';
import { BENCH_BREAKERS, CHILD_ROLE, inChild, measure, runLoad } from '../load.js';
import type { LoadResult, LoadShape, Summary } from '../load.js';

const RUNS = Math.max(1, Number(process.env['BENCH_RUNS'] ?? 3));
const PHASE_MS = Number(process.env['BENCH_PHASE_MS'] ?? 5_000);
const WARMUP_MS = Number(process.env['BENCH_WARMUP_MS'] ?? Math.min(1_000, PHASE_MS / 4));
const CLIENTS = Math.max(2, Number(process.env['BENCH_CLIENTS'] ?? 4));
const MIN_CALLS = Math.max(1, Number(process.env['BENCH_MIN_CALLS'] ?? 3));

const HERE = fileURLToPath(import.meta.url);
// dist/bench/mcp/index.js → the repository root.
const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
/** Real paths: node resolves modules by real path, and only granted paths exist in the sandbox. */
const NODE_MODULES = realpathSync(join(REPO_ROOT, 'node_modules'));
const FILESYSTEM_SERVER = join(
  NODE_MODULES,
  '@modelcontextprotocol',
  'server-filesystem',
  'dist',
  'index.js',
);
/** Under `/usr`, which the sandbox mounts: the same binary on every path. */
const NODE = '/usr/bin/node';
const TOOL = 'read_text_file';
const GOVERNED_TOOL = `files.${TOOL}`;
const MARKER = 'hello from the upstream MCP server\n';
/** What a relayed answer must contain (whatever the JSON escaping around it). */
const MARKER_TEXT = MARKER.trim();

/** The upstream and the call every phase makes. */
interface Upstream {
  /** `[program, ...args]` of the upstream server. */
  readonly command: readonly string[];
  /** The file `read_text_file` reads. */
  readonly path: string;
}

type Job =
  | (LoadShape & { readonly kind: 'session' | 'per-call'; readonly upstream: Upstream })
  | (LoadShape & {
      readonly kind: 'adapter';
      readonly upstream: Upstream;
      readonly spec: ToolExecutionSpec;
      readonly constraints: ExecutionConstraints;
    })
  | (LoadShape & {
      readonly kind: 'governed';
      readonly upstream: Upstream;
      /** The gate's MCP resource (its endpoint URL). */
      readonly resource: string;
      readonly identity: string;
      readonly key: JsonObject;
    });

type Answer = { isError?: unknown; content?: unknown; structuredContent?: unknown; _meta?: unknown };

/** `'ok'` when the upstream's own answer is the file's text. */
function directCode(r: Answer): string {
  const first = Array.isArray(r.content) ? (r.content[0] as { text?: unknown } | undefined) : undefined;
  if (r.isError === true) return 'upstream isError';
  return first?.text === MARKER ? 'ok' : 'unexpected answer';
}

/** `'ok'` when the gate executed the call (a receipt) and relayed the file's text; else its code. */
function governedCode(r: Answer): string {
  const s = r.structuredContent as { code?: unknown } | undefined;
  if (r.isError === true) return typeof s?.code === 'string' ? s.code : 'isError';
  const call = (r._meta as Record<string, { receipt?: unknown } | undefined> | undefined)?.[
    'failclosed.dev/call'
  ];
  if (call?.receipt === undefined) return 'no receipt';
  return JSON.stringify(r.content).includes(MARKER_TEXT) ? 'ok' : 'unexpected answer';
}

const thrown = (e: unknown): string => `threw: ${e instanceof Error ? e.message : String(e)}`;

function stdio(u: Upstream): StdioClientTransport {
  const [command = NODE, ...args] = u.command;
  return new StdioClientTransport({ command, args, stderr: 'ignore' });
}

/** Kills the upstream at once, as the gateway does, rather than waiting for it to leave. */
async function closeNow(client: Client, transport: StdioClientTransport): Promise<void> {
  const pid = transport.pid;
  if (pid !== null) process.kill(pid, 'SIGKILL');
  await client.close();
}

/** Load generator side: the clients of one phase, then the load. */
async function loadOf(job: Job): Promise<LoadResult> {
  const args = { path: job.upstream.path };
  const newClient = (): Client => new Client({ name: 'fc-bench-mcp', version: '1.0.0' });
  switch (job.kind) {
    case 'session': {
      const sessions = await Promise.all(
        Array.from({ length: job.clients }, async () => {
          const client = newClient();
          const transport = stdio(job.upstream);
          await client.connect(transport);
          return { client, transport };
        }),
      );
      try {
        return await runLoad(job, async (w) => {
          const s = sessions[w];
          if (s === undefined) return 'no session';
          try {
            return directCode(await s.client.callTool({ name: TOOL, arguments: args }));
          } catch (e) {
            return thrown(e);
          }
        });
      } finally {
        for (const s of sessions) await closeNow(s.client, s.transport);
      }
    }
    case 'per-call':
      return runLoad(job, async () => {
        const client = newClient();
        const transport = stdio(job.upstream);
        try {
          await client.connect(transport);
          await client.listTools();
          return directCode(await client.callTool({ name: TOOL, arguments: args }));
        } catch (e) {
          return thrown(e);
        } finally {
          await closeNow(client, transport);
        }
      });
    case 'adapter': {
      const adapter = createMcpAdapter();
      return runLoad(job, async () => {
        try {
          const r = await adapter.run({
            tool: GOVERNED_TOOL,
            spec: job.spec,
            params: args,
            constraints: job.constraints,
            signal: new AbortController().signal,
          });
          if (r.outcome === 'deny') return r.code;
          return JSON.stringify(r.result).includes(MARKER_TEXT) ? 'ok' : 'unexpected answer';
        } catch (e) {
          return thrown(e);
        }
      });
    }
    case 'governed': {
      const key = importSigningKeyJwk(job.key);
      const clients = await Promise.all(
        Array.from({ length: job.clients }, async () => {
          const client = newClient();
          await client.connect(
            new StreamableHTTPClientTransport(new URL(job.resource), {
              // A client-key token is single-use (its `jti`): a fresh one for every request.
              authProvider: {
                token: () => Promise.resolve(signClientToken(key, job.identity, job.resource, Date.now())),
              },
            }),
          );
          return client;
        }),
      );
      try {
        return await runLoad(job, async (w) => {
          const client = clients[w];
          if (client === undefined) return 'no client';
          try {
            return governedCode(await client.callTool({ name: GOVERNED_TOOL, arguments: args }));
          } catch (e) {
            return thrown(e);
          }
        });
      } finally {
        for (const c of clients) await c.close();
      }
    }
  }
}

/** Runs the CLI on the data directory as an operator would; throws when it fails. */
async function cli(dir: string, ...args: string[]): Promise<string> {
  const out: string[] = [];
  const code = await runCli(['--data', dir, ...args], {
    out: (t) => void out.push(t),
    err: (t) => void process.stderr.write(t),
    env: {},
  });
  if (code !== 0) throw new Error(`failclosed ${args.slice(0, 2).join(' ')} exited with ${code}`);
  return out.join('');
}

const fmtRatio = (x: number): string => (x >= 10 ? `${x.toFixed(0)}×` : `${x.toFixed(2)}×`);

async function main(): Promise<void> {
  const work = realpathSync(mkdtempSync(join(tmpdir(), 'fc-bench-mcp-')));
  const dir = join(work, 'data');
  const src = join(work, 'policy');
  const files = join(work, 'files');
  mkdirSync(files);
  const path = join(files, 'hello.txt');
  writeFileSync(path, MARKER);
  const upstream: Upstream = { command: [NODE, FILESYSTEM_SERVER, files], path };
  cpSync(join(REPO_ROOT, 'examples', 'demo-policy'), src, { recursive: true });
  writeFileSync(
    join(src, 'policies', 'bench-files.cedar'),
    `@reason("the benchmark reads one file through the gateway")\npermit (principal, action == Action::"${GOVERNED_TOOL}", resource);\n`,
  );
  await initDataDir(dir);
  let executed = 0;
  const instance = await startEmbedded(dir, {
    port: 0,
    executionPort: 0,
    breakers: BENCH_BREAKERS,
    onToolRun: ({ tool }) => {
      if (tool === GOVERNED_TOOL) executed += 1;
    },
  });
  try {
    announceServer(dir, instance.url);
    // Pinned and activated as docs/mcp.md tells an operator to.
    await cli(
      dir,
      'policy',
      'pin-mcp',
      src,
      '--server',
      'files',
      '--read',
      NODE_MODULES,
      '--read',
      files,
      '--only',
      TOOL,
      '--',
      ...upstream.command,
    );
    const bundle = join(work, 'bundle.json');
    await cli(dir, 'policy', 'build', src, '--out', bundle);
    await cli(dir, 'policy', 'activate', bundle);
    // The adapter phase runs the tool as the bundle pins it, with the limits an envelope grants it.
    const pinned = JSON.parse(readFileSync(join(src, 'tools', `${GOVERNED_TOOL}.json`), 'utf8')) as ToolSpec;
    const constraints = constraintsFor(pinned, {
      approvals: 0,
      approver_roles: [],
      preview: false,
      max_cost_usd: null,
    });
    if (isDeny(constraints)) throw new Error(`the pinned tool's limits: ${constraints.code}`);
    const file = readClientFile(dir, DEMO_CLIENT.identity);
    const shape = {
      clients: 1,
      ms: PHASE_MS,
      warmupMs: WARMUP_MS,
      minCalls: MIN_CALLS,
      measured: 'ended',
    } as const;
    console.log(
      `failclosed MCP bench: ${TOOL} of @modelcontextprotocol/server-filesystem (${MARKER.length} bytes), ${PHASE_MS / 1000} s per phase (after a warm-up of each client's first call and ≥ ${WARMUP_MS / 1000} s; ≥ ${MIN_CALLS} calls), median of ${RUNS} runs, load generator (official SDK client) in its own process\n`,
    );
    const phase = (name: string, job: Job, cpuLabel: string | false = false): Promise<Summary> =>
      measure(name, RUNS, () => inChild<LoadResult>(HERE, job), { nameWidth: 50, cpuLabel, rateDigits: 1 });
    const session = await phase('direct, one long-lived stdio session, 1 client', {
      ...shape,
      kind: 'session',
      upstream,
    });
    const perCall = await phase('direct, a fresh upstream per call, 1 client', {
      ...shape,
      kind: 'per-call',
      upstream,
    });
    const adapter = await phase('  the same in the sandbox (MCP adapter alone)', {
      ...shape,
      kind: 'adapter',
      upstream,
      spec: pinned.adapter,
      constraints,
    });
    const resource = `${instance.url}/mcp`;
    const governedJob = {
      ...shape,
      kind: 'governed',
      upstream,
      resource,
      identity: file.identity,
      key: file.key,
    } as const;
    const before = executed;
    const gov1 = await phase('governed (HTTP gateway, SQLite), 1 client', governedJob, 'gate CPU');
    const govN = await phase(
      `governed, ${CLIENTS} clients`,
      { ...governedJob, clients: CLIENTS },
      'gate CPU',
    );
    const governedRuns = executed - before;

    console.log('\nratios (medians, 1 client unless named):');
    const row = (name: string, value: string): void => console.log(`  ${name.padEnd(48)} ${value}`);
    row('governed / direct per call, throughput', (gov1.rate / perCall.rate).toFixed(3));
    row('governed / direct per call, p50 latency', fmtRatio(gov1.p50 / perCall.p50));
    row('governed / direct long-lived, throughput', (gov1.rate / session.rate).toFixed(4));
    row('governed / direct long-lived, p50 latency', fmtRatio(gov1.p50 / session.p50));
    row('sandboxed adapter / direct per call, p50', fmtRatio(adapter.p50 / perCall.p50));
    row('governed / sandboxed adapter, p50', fmtRatio(gov1.p50 / adapter.p50));
    row(`governed ${CLIENTS} clients / 1 client, throughput`, (govN.rate / gov1.rate).toFixed(2));
    console.log(
      `\np50 split of a governed call (1 client): ${perCall.p50.toFixed(0)} ms upstream launch and exchange, ${(adapter.p50 - perCall.p50).toFixed(0)} ms sandbox and pin check, ${(gov1.p50 - adapter.p50).toFixed(0)} ms gate (HTTP, authentication, decision, envelope, ledger, receipt)`,
    );
    const phases = { session, perCall, adapter, gov1, govN };
    const failed = Object.entries(phases).filter(([, s]) => s.failures > 0);
    const governedCalls = gov1.calls + govN.calls;
    console.log(
      `governed calls measured: ${governedCalls} (${gov1.failures + govN.failures} not ok); tool runs by the Execution Layer during the governed phases, warm-up included: ${governedRuns}`,
    );
    if (failed.length > 0) {
      for (const [name, s] of failed) console.log(`NOT OK in ${name}: ${JSON.stringify(s.codes)}`);
      process.exitCode = 1;
    } else console.log('every call succeeded');
  } finally {
    await instance.close();
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.env[CHILD_ROLE] === '1') {
  process.once('message', (job: Job) => {
    void loadOf(job).then((r) => process.send?.(r));
  });
} else {
  await main();
}
