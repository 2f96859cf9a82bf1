/**
 * `failclosed demo`: a narrated walkthrough of SPEC §7 against a real running deployment. It
 * starts the embedded gate (in a fresh temporary data directory, or over `--data DIR`), talks to
 * it over HTTP with the real signing client, and prints one line per step: what is tried, what
 * happened (outcome and code), whether a tool ran, and PASS or FAIL. The exit code is 0 only when
 * every step behaved as SPEC §7 says. Steps are a list ({@link DEMO_STEPS}); approval (scenario
 * 11) and break-glass (scenario 14) steps slot in as further entries. See docs/demo.md.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '../client/index.js';
import type { FailclosedClient } from '../client/index.js';
import {
  DEMO_CLIENT,
  initDataDir,
  readClientFile,
  operatorDownload,
  readConfig,
  readOperatorToken,
  runningServer,
  startEmbedded,
} from '../embedded/index.js';
import type { EmbeddedInstance } from '../embedded/index.js';
import { parseJson } from '../kernel/index.js';
import type { JsonObject } from '../kernel/index.js';
import { runVerifyCli } from '../verify/index.js';
import { APPROVAL_DEMO_STEPS } from './demo-approvals.js';
import { saveTrustRoots } from './trust-file.js';
import { demoOutages } from './demo-faults.js';
import type { DemoOutages } from './demo-faults.js';

/** What a step sees: the running deployment, its clock and what earlier steps left behind. */
export interface DemoContext {
  readonly instance: EmbeddedInstance;
  /** Outage switches of the instance's dependencies (scenarios 5, 8, 9). */
  readonly outages: DemoOutages;
  readonly dir: string;
  /** Scratch directory for exported bundles. */
  readonly work: string;
  readonly client: FailclosedClient;
  /** Moves the deployment's (and the client's) clock forward; it never goes back. */
  advanceClock(ms: number): void;
  /** A real envelope and its parameters, left by the allowed call. */
  envelope?: { readonly token: string; readonly tool: string; readonly params: JsonObject };
}

/** What a step observed: `executed`, a denial code, or a step-specific summary. */
export interface DemoObservation {
  readonly observed: string;
  readonly detail?: string;
}

/** One demo step (SPEC §7). A step passes when it observes `expect` and no tool ran unless it expects `executed`. */
export interface DemoStep {
  /** The SPEC §7 scenario number, when the step demonstrates one. */
  readonly scenario?: number;
  /** What is tried. */
  readonly title: string;
  readonly expect: string;
  run(ctx: DemoContext): Promise<DemoObservation>;
}

let sessionCount = 0;
const session = (): string => `demo-${process.pid}-${(sessionCount += 1)}`;

async function governed(ctx: DemoContext, tool: string, params: JsonObject): Promise<DemoObservation> {
  const r = await ctx.client.call(tool, params, { session: session() });
  return r.outcome === 'executed'
    ? { observed: 'executed', detail: `request ${r.request_id}` }
    : { observed: r.code };
}

async function direct(ctx: DemoContext, body: JsonObject): Promise<DemoObservation> {
  const res = await fetch(new URL('/v1/execute', ctx.instance.executionUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const v = parseJson(new Uint8Array(await res.arrayBuffer())) as { outcome?: unknown; code?: unknown };
  return { observed: v.outcome === 'executed' ? 'executed' : String(v.code) };
}

async function withFault(
  set: (on: boolean) => void,
  fn: () => Promise<DemoObservation>,
): Promise<DemoObservation> {
  set(true);
  try {
    return await fn();
  } finally {
    set(false);
  }
}

/**
 * Reads the consumed envelope of `requestId` from its execution receipt in the operator evidence
 * view (SPEC §5): the only place a JWS is ever recorded, once it can no longer be used.
 */
async function envelopeOf(ctx: DemoContext, requestId: string): Promise<string | undefined> {
  const res = await fetch(new URL(`/v1/requests/${encodeURIComponent(requestId)}`, ctx.instance.url), {
    headers: { authorization: `Bearer ${readOperatorToken(ctx.dir)}` },
  });
  const view = parseJson(new Uint8Array(await res.arrayBuffer())) as {
    records?: { entry?: { type?: unknown; payload?: { envelope?: unknown } } }[];
  };
  const token = view.records?.find((r) => r.entry?.type === 'execution.receipt')?.entry?.payload?.envelope;
  return typeof token === 'string' ? token : undefined;
}

/** `failclosed verify FILE --trust TRUST_FILE --json`: the exit code and the first violation it names. */
async function verifyFile(
  path: string,
  trust: string,
): Promise<{ exit: number; first?: { code?: string; index?: number } }> {
  const out: string[] = [];
  const exit = await runVerifyCli([path, '--trust', trust, '--json'], {
    out: (t) => out.push(t),
    err: () => undefined,
    readFile: (p) => readFileSync(p),
  });
  const report = JSON.parse(out.join('')) as { firstViolation?: { code?: string; index?: number } };
  return { exit, ...(report.firstViolation === undefined ? {} : { first: report.firstViolation }) };
}

/** The walkthrough, in order. Later steps may use what earlier ones left in the context. */
export const DEMO_STEPS: readonly DemoStep[] = [
  {
    title: 'allowed call: echo {"message":"hello"}',
    expect: 'executed',
    async run(ctx) {
      const params = { message: 'hello' };
      const r = await ctx.client.call('echo', params, { session: session() });
      if (r.outcome !== 'executed') return { observed: r.code };
      const token = await envelopeOf(ctx, r.request_id);
      if (token !== undefined) ctx.envelope = { token, tool: 'echo', params };
      return {
        observed: 'executed',
        detail: `result ${JSON.stringify(r.result)}, receipt #${r.receipt.index}`,
      };
    },
  },
  {
    title: 'policy deny: transfer_funds of 60000 USD (hard cap 50000)',
    expect: 'ERR_POLICY_DENY',
    run: (ctx) =>
      governed(ctx, 'transfer_funds', {
        from_account: 'acct_ops',
        to_account: 'acct_x',
        amount: 60000,
        currency: 'USD',
      }),
  },
  {
    scenario: 2,
    title: "parameter tampering: the echo envelope presented to the Execution Layer with message 'rm -rf /'",
    expect: 'ERR_ENVELOPE_PARAMS_MISMATCH',
    run: async (ctx) =>
      ctx.envelope === undefined
        ? { observed: 'no envelope from step 1' }
        : direct(ctx, {
            envelope: ctx.envelope.token,
            tool: ctx.envelope.tool,
            tenant: DEMO_CLIENT.tenant,
            params: { message: 'rm -rf /' },
          }),
  },
  {
    scenario: 6,
    title: 'replay: the used echo envelope presented again with its own parameters',
    expect: 'ERR_NONCE_REPLAYED',
    run: async (ctx) =>
      ctx.envelope === undefined
        ? { observed: 'no envelope from step 1' }
        : direct(ctx, {
            envelope: ctx.envelope.token,
            tool: ctx.envelope.tool,
            tenant: DEMO_CLIENT.tenant,
            params: ctx.envelope.params,
          }),
  },
  {
    scenario: 3,
    title: 'bypass: a direct call to the Execution Layer without an envelope',
    expect: 'ERR_ENVELOPE_MISSING',
    run: (ctx) =>
      direct(ctx, { tool: 'echo', tenant: DEMO_CLIENT.tenant, params: { message: 'no envelope' } }),
  },
  {
    scenario: 4,
    title: 'expiry: the echo envelope presented after its exp (clock advanced past exp + tolerance)',
    expect: 'ERR_ENVELOPE_EXPIRED',
    async run(ctx) {
      if (ctx.envelope === undefined) return { observed: 'no envelope from step 1' };
      const cfg = readConfig(ctx.dir);
      ctx.advanceClock((cfg.envelope_ttl_sec + cfg.clock_tolerance_sec + 1) * 1000);
      return direct(ctx, {
        envelope: ctx.envelope.token,
        tool: ctx.envelope.tool,
        tenant: DEMO_CLIENT.tenant,
        params: ctx.envelope.params,
      });
    },
  },
  {
    scenario: 5,
    title: 'Control Plane down: echo while the Control Plane fails',
    expect: 'ERR_CONTROL_PLANE_UNAVAILABLE',
    run: (ctx) =>
      withFault(
        (on) => void (ctx.outages.controlPlane = on),
        () => governed(ctx, 'echo', { message: 'cp down' }),
      ),
  },
  {
    scenario: 8,
    title: 'nonce store down: echo while the nonce store fails',
    expect: 'ERR_NONCE_STORE_UNAVAILABLE',
    run: (ctx) =>
      withFault(
        (on) => void (ctx.outages.nonceStore = on),
        () => governed(ctx, 'echo', { message: 'nonce store down' }),
      ),
  },
  {
    scenario: 9,
    title: 'ledger down: echo while every ledger write fails',
    expect: 'ERR_LEDGER_UNAVAILABLE',
    run: (ctx) =>
      withFault(
        (on) => void (ctx.outages.ledger = on),
        () => governed(ctx, 'echo', { message: 'ledger down' }),
      ),
  },
  {
    scenario: 12,
    title:
      'ledger tampering: pin the trust roots, export the ledger, verify it, edit one decision in a copy, verify again',
    expect: 'intact: exit 0; tampered: exit 1 naming the edited entry',
    async run(ctx) {
      const intactPath = join(ctx.work, 'audit-bundle.jsonl');
      const tamperedPath = join(ctx.work, 'audit-bundle-tampered.jsonl');
      const a = await exportTo(ctx, intactPath);
      if (a !== undefined) return { observed: `export failed (HTTP ${a})` };
      type Entry = JsonObject & { index: number; type: string; payload: JsonObject };
      let target: Entry | undefined;
      // Edit one denied decision in a copy (one line of the JSON Lines bundle).
      const lines = readFileSync(intactPath, 'utf8')
        .split('\n')
        .map((l) => {
          if (target !== undefined || !l.startsWith('{"record":"entry"')) return l;
          const e = (parseJson(l) as { entry: Entry }).entry;
          if (e.type !== 'decision' || e.payload['outcome'] !== 'deny') return l;
          target = e;
          return JSON.stringify({
            record: 'entry',
            entry: { ...e, payload: { ...e.payload, outcome: 'allow' } },
          });
        });
      if (target === undefined) return { observed: 'no decision to edit' };
      writeFileSync(tamperedPath, lines.join('\n'));
      const trustPath = join(ctx.work, 'trust-roots.json');
      if (!(await saveTrustRoots(ctx.instance.url, trustPath)))
        return { observed: 'no trust roots published' };
      const intact = await verifyFile(intactPath, trustPath);
      const tampered = await verifyFile(tamperedPath, trustPath);
      const named = tampered.first;
      const ok = intact.exit === 0 && tampered.exit === 1 && named?.index === target.index;
      return {
        observed: ok
          ? 'intact: exit 0; tampered: exit 1 naming the edited entry'
          : `intact: exit ${intact.exit}; tampered: exit ${tampered.exit}`,
        detail: `edited entry #${target.index} (deny → allow); verify: ${named?.code ?? 'no violation'} at entry #${named?.index ?? '?'}`,
      };
    },
  },
  ...APPROVAL_DEMO_STEPS,
];

/** Options of {@link runDemo}. */
export interface DemoOptions {
  /** Run over this data directory (initialised if needed) instead of a fresh temporary one. */
  readonly dataDir?: string;
  readonly steps?: readonly DemoStep[];
}

/**
 * Runs the demo and prints one line per step; resolves 0 when every step passed, 1 otherwise.
 * With `dataDir`, refuses (1) while `failclosed up` serves that directory: the demo injects
 * faults into its own instance, and a data directory has exactly one ledger writer.
 */
export async function runDemo(out: (text: string) => void, options: DemoOptions = {}): Promise<number> {
  const temp = options.dataDir === undefined;
  const work = mkdtempSync(join(tmpdir(), 'failclosed-demo-'));
  const dir = options.dataDir ?? join(work, 'data');
  try {
    await initDataDir(dir);
    const running = await runningServer(dir);
    if (running !== undefined) {
      out(`a gate already serves ${dir} at ${running}; stop it first (the demo needs its own instance)\n`);
      return 1;
    }
    let offset = 0;
    const now = (): number => Date.now() + offset;
    const runs: string[] = [];
    const { outages, decorate } = demoOutages();
    const instance = await startEmbedded(dir, {
      decorate,
      port: 0,
      executionPort: 0,
      clock: now,
      onToolRun: ({ tool }) => void runs.push(tool),
    });
    try {
      out(
        `failclosed demo: gate ${instance.url}, execution layer ${instance.executionUrl}, data ${temp ? '(temporary)' : dir}\n\n`,
      );
      const file = readClientFile(dir, DEMO_CLIENT.identity);
      const client = createClient({
        url: instance.url,
        identity: file.identity,
        tenant: file.tenant,
        key: file.key,
        now,
      });
      const ctx: DemoContext = {
        instance,
        outages,
        dir,
        work,
        client,
        advanceClock: (ms) => void (offset += Math.max(0, ms)),
      };
      return await runSteps(out, ctx, runs, options.steps ?? DEMO_STEPS);
    } finally {
      await instance.close();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

async function runSteps(
  out: (text: string) => void,
  ctx: DemoContext,
  runs: string[],
  steps: readonly DemoStep[],
): Promise<number> {
  let failed = 0;
  for (const [i, step] of steps.entries()) {
    const before = runs.length;
    let seen: DemoObservation;
    try {
      seen = await step.run(ctx);
    } catch (err) {
      seen = { observed: `failed: ${err instanceof Error ? err.message : 'error'}` };
    }
    const ran = runs.length - before;
    const pass = seen.observed === step.expect && ran === (step.expect === 'executed' ? 1 : 0);
    if (!pass) failed += 1;
    const tag = step.scenario === undefined ? '' : ` [§7.${step.scenario}]`;
    const detail = seen.detail === undefined ? '' : ` (${seen.detail})`;
    const expected = pass ? '' : `; expected ${step.expect}`;
    const tool = ran > 0 ? `tool ran ${ran}×` : 'tool did not run';
    out(
      `${pass ? 'PASS' : 'FAIL'} ${String(i + 1).padStart(2)}.${tag} ${step.title} → ${seen.observed}${detail}; ${tool}${expected}\n`,
    );
  }
  out(
    `\n${steps.length - failed}/${steps.length} steps behaved as SPEC §7 says${failed === 0 ? '' : `; ${failed} did not`}\n`,
  );
  return failed === 0 ? 0 : 1;
}

/** Exports the ledger through the operator route into `path`; the HTTP status when refused. */
export async function exportTo(ctx: DemoContext, path: string): Promise<number | undefined> {
  const conn = {
    url: ctx.instance.url,
    token: readOperatorToken(ctx.dir),
    inProcess: true,
    close: () => Promise.resolve(),
  };
  const a = await operatorDownload(conn, 'ledger-export', {}, path);
  return a.status === 200 ? undefined : a.status;
}
