/**
 * `failclosed demo`: a narrated walkthrough of SPEC §7 against a real running deployment. It
 * starts the embedded gate (in a fresh temporary data directory, or over `--data DIR`), talks to
 * it over HTTP with the real signing client, and prints one line per step: what is tried, what
 * happened (outcome and code), whether a tool ran, and PASS or FAIL. The exit code is 0 only when
 * every step behaved as SPEC §7 says. Steps are a list ({@link DEMO_STEPS}); approval (scenario
 * 11) and break-glass (scenario 14) steps slot in as further entries. See docs/demo.md.
 *
 * `--gate URL` runs the same walkthrough through a deployed topology instead ({@link runDemoThrough}):
 * calls go to that Gate (a keyless `serve gate`), operators and approvers act on the Control Plane
 * process serving `--data`, and the direct attempts on the Execution Layer come over mutual TLS.
 * Steps that need the demo's own instance (its clock, its outage switches) are skipped there.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
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
  tlsFilesFor,
} from '../embedded/index.js';
import { parseJson } from '../kernel/index.js';
import type { JsonObject } from '../kernel/index.js';
import { runVerifyCli } from '../verify/index.js';
import { APPROVAL_DEMO_STEPS } from './demo-approvals.js';
import { saveTrustRoots } from './trust-file.js';
import { demoOutages } from './demo-faults.js';
import type { DemoOutages } from './demo-faults.js';
import { createMtlsAgent, loadTlsMaterial, readCapped } from '../transport/index.js';
import type { MtlsAgent } from '../transport/index.js';

/** What a step sees: the running deployment, its clock and what earlier steps left behind. */
export interface DemoContext {
  /**
   * Where operators and approvers act: the demo instance's Gate, or through a deployment the
   * Control Plane process serving the data directory (its announced client port).
   */
  readonly url: string;
  readonly dir: string;
  /** Scratch directory for exported bundles. */
  readonly work: string;
  readonly client: FailclosedClient;
  /**
   * Presents `body` to the Execution Layer's own listener (`POST /v1/execute`), bypassing the Gate:
   * in the demo's own instance over plain HTTP; through a deployment over mutual TLS with the
   * certificate the Control Plane process calls Execution Layers with (`tls.gate` of the data
   * directory), or with no client certificate at all (`withoutCertificate`).
   */
  direct(body: JsonObject, options?: { readonly withoutCertificate?: boolean }): Promise<DemoObservation>;
  /** The demo's own instance only: outage switches of its dependencies (scenarios 5, 8, 9). */
  readonly outages?: DemoOutages;
  /** The demo's own instance only: moves its (and the client's) clock forward, never back. */
  readonly advanceClock?: (ms: number) => void;
  /** True when the demo runs its own instance (its approval commands announce it while they run). */
  readonly own: boolean;
  /** A real envelope, its parameters and its request, left by the allowed call. */
  envelope?: {
    readonly token: string;
    readonly tool: string;
    readonly params: JsonObject;
    readonly request_id: string;
  };
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
  /**
   * `own-instance`: needs the demo's own instance (its clock or its outage switches) and is
   * skipped through a deployment; `deployment`: runs only through one.
   */
  readonly needs?: 'own-instance' | 'deployment';
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

const direct = (ctx: DemoContext, body: JsonObject): Promise<DemoObservation> => ctx.direct(body);

/** An Execution Layer answer as a step's observation: `executed` or its denial code. */
function executionObservation(bytes: Uint8Array): DemoObservation {
  const v = parseJson(bytes) as { outcome?: unknown; code?: unknown };
  return { observed: v.outcome === 'executed' ? 'executed' : String(v.code) };
}

/** `direct` of the demo's own instance: its Execution Layer's plain HTTP listener. */
function directOver(executionUrl: string): DemoContext['direct'] {
  return async (body) => {
    const res = await fetch(new URL('/v1/execute', executionUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return executionObservation(new Uint8Array(await res.arrayBuffer()));
  };
}

/**
 * The alerts a TLS server sends when it refuses the client's certificate (or its absence): only
 * these are a refusal by the Execution Layer. A reset, a client-side verification failure or a
 * peer that does not speak TLS is something else.
 */
const TLS_REFUSALS =
  /^ERR_SSL_(?:TLSV13|SSLV3|TLSV1)_ALERT_(?:CERTIFICATE_REQUIRED|HANDSHAKE_FAILURE|BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|ACCESS_DENIED|CERTIFICATE_REVOKED|CERTIFICATE_EXPIRED)$/;

/**
 * `direct` through a deployment: `POST /v1/execute` at `executorUrl` over TLS, trusting `ca`, as
 * the holder of `agent`'s certificate, or with none (`withoutCertificate`). A handshake the
 * Execution Layer refuses with one of {@link TLS_REFUSALS} is observed as `refused at TLS`;
 * anything else (no connection, a reset) is a failure.
 */
function directOverTls(executorUrl: string, agent: MtlsAgent, ca: Buffer): DemoContext['direct'] {
  return (body, options) =>
    new Promise((resolve) => {
      const text = JSON.stringify(body);
      const req = request(
        new URL('/v1/execute', executorUrl),
        {
          method: 'POST',
          ...(options?.withoutCertificate === true ? { ca, agent: false } : { agent: agent.current() }),
          timeout: 10_000,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
        },
        (res) => {
          readCapped(res, 1 << 20).then(
            (b) =>
              resolve(
                b === null
                  ? { observed: 'an answer too large' }
                  : res.statusCode === 200 || b.length > 0
                    ? executionObservation(b)
                    : { observed: `HTTP ${res.statusCode ?? 0}` },
              ),
            (err: Error) => resolve({ observed: `failed: ${err.message}` }),
          );
        },
      );
      req.once('timeout', () => req.destroy(new Error('no answer within 10 s')));
      req.once('error', (err: NodeJS.ErrnoException) => {
        const code = err.code ?? '';
        resolve(
          TLS_REFUSALS.test(code)
            ? { observed: 'refused at TLS', detail: code }
            : { observed: `failed: ${`${code} ${err.message}`.trim().slice(0, 200)}` },
        );
      });
      req.end(text);
    });
}

async function withFault(
  ctx: DemoContext,
  set: (outages: DemoOutages, on: boolean) => void,
  fn: () => Promise<DemoObservation>,
): Promise<DemoObservation> {
  const outages = ctx.outages;
  if (outages === undefined) return { observed: 'no outage switches' };
  set(outages, true);
  try {
    return await fn();
  } finally {
    set(outages, false);
  }
}

/** One evidence view's records, as the demo reads them. */
type ViewRecords = { entry?: { type?: unknown; payload?: { envelope?: unknown } } }[];

/** How long one read of the evidence view may take, its answer's body included (ms). */
export const EVIDENCE_READ_MS = 30_000;

/**
 * Reads the operator evidence view of `requestId` (`null` when the ledger knows no such request).
 * The demo only narrates: an answer of 503 (the Gate could not confirm the `audit.read` record or
 * read the ledger in time, as on a loaded machine) is asked again, at most three times in all;
 * any other answer, a third 503, or a read that takes longer than `timeoutMs` (a Gate that
 * accepted the connection and never answered) throws, and the step that needed it fails naming it.
 */
export async function evidenceRecords(
  url: string,
  token: string,
  requestId: string,
  timeoutMs = EVIDENCE_READ_MS,
): Promise<ViewRecords | null> {
  for (let attempt = 1; ; attempt += 1) {
    let res: Response;
    let bytes: Uint8Array;
    try {
      res = await fetch(new URL(`/v1/requests/${encodeURIComponent(requestId)}`, url), {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(timeoutMs),
      });
      bytes = new Uint8Array(await res.arrayBuffer());
    } catch (err) {
      const timedOut = err instanceof Error && err.name === 'TimeoutError';
      throw new Error(
        timedOut
          ? `the evidence view of ${requestId} did not answer within ${timeoutMs} ms`
          : `the evidence view of ${requestId} could not be read`,
        { cause: err },
      );
    }
    if (res.status === 404) return null;
    if (res.status === 200) return (parseJson(bytes) as { records?: ViewRecords }).records ?? [];
    if (res.status !== 503 || attempt === 3)
      throw new Error(`the evidence view of ${requestId} answered HTTP ${res.status}`);
    await new Promise((resolve) => setTimeout(resolve, 250 * attempt));
  }
}

/**
 * Reads the consumed envelope of `requestId` from its execution receipt in the operator evidence
 * view (SPEC §5): the only place a JWS is ever recorded, once it can no longer be used.
 */
async function envelopeOf(ctx: DemoContext, requestId: string): Promise<string | undefined> {
  const records = await evidenceRecords(ctx.url, readOperatorToken(ctx.dir), requestId);
  const token = records?.find((r) => r.entry?.type === 'execution.receipt')?.entry?.payload?.envelope;
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
      if (token !== undefined) ctx.envelope = { token, tool: 'echo', params, request_id: r.request_id };
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
    title: "bypass without the Gate's certificate: a direct call to the Execution Layer over TLS",
    expect: 'refused at TLS',
    needs: 'deployment',
    run: (ctx) =>
      ctx.direct(
        { tool: 'echo', tenant: DEMO_CLIENT.tenant, params: { message: 'no certificate' } },
        { withoutCertificate: true },
      ),
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
    needs: 'own-instance',
    async run(ctx) {
      if (ctx.envelope === undefined) return { observed: 'no envelope from step 1' };
      if (ctx.advanceClock === undefined) return { observed: 'no clock to advance' };
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
    needs: 'own-instance',
    run: (ctx) =>
      withFault(
        ctx,
        (o, on) => void (o.controlPlane = on),
        () => governed(ctx, 'echo', { message: 'cp down' }),
      ),
  },
  {
    scenario: 8,
    title: 'nonce store down: echo while the nonce store fails',
    expect: 'ERR_NONCE_STORE_UNAVAILABLE',
    needs: 'own-instance',
    run: (ctx) =>
      withFault(
        ctx,
        (o, on) => void (o.nonceStore = on),
        () => governed(ctx, 'echo', { message: 'nonce store down' }),
      ),
  },
  {
    scenario: 9,
    title: 'ledger down: echo while every ledger write fails',
    expect: 'ERR_LEDGER_UNAVAILABLE',
    needs: 'own-instance',
    run: (ctx) =>
      withFault(
        ctx,
        (o, on) => void (o.ledger = on),
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
      if (!(await saveTrustRoots(ctx.url, trustPath))) return { observed: 'no trust roots published' };
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
 * Counts tool runs around one step: `before` is taken before it runs, `ran` after, answering how
 * many tools ran in between.
 */
interface RunCounter {
  before(ctx: DemoContext): Promise<unknown>;
  ran(ctx: DemoContext, before: unknown): Promise<number>;
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
      out(
        `a gate already serves ${dir} at ${running}; stop it first (the demo needs its own instance), or run the demo through it with --gate URL\n`,
      );
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
        url: instance.url,
        dir,
        work,
        client,
        direct: directOver(instance.executionUrl),
        outages,
        advanceClock: (ms) => void (offset += Math.max(0, ms)),
        own: true,
      };
      const counter: RunCounter = {
        before: () => Promise.resolve(runs.length),
        ran: (_ctx, before) => Promise.resolve(runs.length - (before as number)),
      };
      return await runSteps(out, ctx, counter, options.steps ?? DEMO_STEPS);
    } finally {
      await instance.close();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Options of {@link runDemoThrough}. */
export interface DemoThroughOptions {
  /** The Gate clients call (a keyless `failclosed serve gate`, or any Gate of the deployment). */
  readonly gateUrl: string;
  /**
   * The Control Plane process's data directory: the demo client's key, the operator token, the
   * announced client port of the process serving it (`server.json`), and `executor_url` with the
   * `tls` files it calls the Execution Layer with.
   */
  readonly dataDir: string;
  readonly steps?: readonly DemoStep[];
}

/**
 * Runs the walkthrough through a deployed topology: calls through `gateUrl`, operator and approver
 * actions on the Control Plane process serving `dataDir`, direct attempts on its `executor_url`
 * over mutual TLS. Steps that need the demo's own instance are skipped and say so. A tool run is
 * counted from the ledger: the `execution.receipt` records of the requests the step made (and of
 * the allowed call's request, whose envelope the direct attempts present), read through the
 * operator evidence view (each read is itself recorded, `audit.read`; a 503 is asked again, three
 * times in all). Resolves 0 when every step that ran passed, 1 otherwise.
 */
export async function runDemoThrough(
  out: (text: string) => void,
  options: DemoThroughOptions,
): Promise<number> {
  const dir = options.dataDir;
  const url = await runningServer(dir);
  if (url === undefined) {
    out(`no Control Plane process serves ${dir}: start it (failclosed up --data ${dir}) first\n`);
    return 1;
  }
  const config = readConfig(dir);
  if (config.executor_url === undefined || config.tls?.gate === undefined) {
    out(
      `${dir}/failclosed.json names no executor_url with tls.gate: the demo needs the Execution Layer's address\n`,
    );
    return 1;
  }
  const files = tlsFilesFor(dir, config.tls, config.tls.gate);
  const { ca } = await loadTlsMaterial(files);
  const agent = await createMtlsAgent({ files, expect: ['executor'] });
  const work = mkdtempSync(join(tmpdir(), 'failclosed-demo-'));
  try {
    out(
      `failclosed demo through a deployment: gate ${options.gateUrl}, Control Plane ${url}, execution layer ${config.executor_url}, data ${dir}\n\n`,
    );
    const file = readClientFile(dir, DEMO_CLIENT.identity);
    const made = new Set<string>();
    const signed = createClient({
      url: options.gateUrl,
      identity: file.identity,
      tenant: file.tenant,
      key: file.key,
    });
    const client: FailclosedClient = {
      ...signed,
      async call(tool, params, callOptions) {
        const r = await signed.call(tool, params, callOptions);
        if (r.request_id !== null) made.add(r.request_id);
        return r;
      },
    };
    const ctx: DemoContext = {
      url,
      dir,
      work,
      client,
      direct: directOverTls(config.executor_url, agent, ca),
      own: false,
    };
    const token = readOperatorToken(dir);
    const counter: RunCounter = {
      before: async (c) => ({
        made: new Set(made),
        envelope: c.envelope === undefined ? 0 : await receiptsOf(url, token, c.envelope.request_id),
      }),
      async ran(c, b) {
        const before = b as { made: Set<string>; envelope: number };
        let n = 0;
        for (const id of made) if (!before.made.has(id)) n += await receiptsOf(url, token, id);
        const env = c.envelope?.request_id;
        if (env !== undefined && before.made.has(env))
          n += (await receiptsOf(url, token, env)) - before.envelope;
        return n;
      },
    };
    return await runSteps(out, ctx, counter, options.steps ?? DEMO_STEPS);
  } finally {
    agent.close();
    rmSync(work, { recursive: true, force: true });
  }
}

/** The `execution.receipt` records of one request, from the operator evidence view (0 when unknown). */
async function receiptsOf(url: string, token: string, requestId: string): Promise<number> {
  const records = await evidenceRecords(url, token, requestId);
  return (records ?? []).filter((r) => r.entry?.type === 'execution.receipt').length;
}

async function runSteps(
  out: (text: string) => void,
  ctx: DemoContext,
  counter: RunCounter,
  steps: readonly DemoStep[],
): Promise<number> {
  let failed = 0;
  let skipped = 0;
  // A step that runs only through a deployment is not part of the demo's own walkthrough.
  const list = ctx.own ? steps.filter((s) => s.needs !== 'deployment') : steps;
  for (const [i, step] of list.entries()) {
    const tag = step.scenario === undefined ? '' : ` [§7.${step.scenario}]`;
    const head = `${String(i + 1).padStart(2)}.${tag} ${step.title}`;
    if (step.needs === 'own-instance' && !ctx.own) {
      skipped += 1;
      out(
        `SKIP ${head}: needs the demo's own instance (its clock or outage switches): \`failclosed demo\` without --gate runs it\n`,
      );
      continue;
    }
    let seen: DemoObservation;
    let ran = 0;
    try {
      const before = await counter.before(ctx);
      try {
        seen = await step.run(ctx);
      } catch (err) {
        seen = { observed: `failed: ${err instanceof Error ? err.message : 'error'}` };
      }
      ran = await counter.ran(ctx, before);
    } catch (err) {
      // The tool runs could not be counted: the step cannot pass.
      seen = { observed: `tool runs not countable: ${err instanceof Error ? err.message : 'error'}` };
    }
    const pass = seen.observed === step.expect && ran === (step.expect === 'executed' ? 1 : 0);
    if (!pass) failed += 1;
    const detail = seen.detail === undefined ? '' : ` (${seen.detail})`;
    const expected = pass ? '' : `; expected ${step.expect}`;
    const tool = ran > 0 ? `tool ran ${ran}×` : 'tool did not run';
    out(`${pass ? 'PASS' : 'FAIL'} ${head} → ${seen.observed}${detail}; ${tool}${expected}\n`);
  }
  const run = list.length - skipped;
  const skips = skipped === 0 ? '' : ` (${skipped} skipped)`;
  out(
    `\n${run - failed}/${run} steps behaved as SPEC §7 says${skips}${failed === 0 ? '' : `; ${failed} did not`}\n`,
  );
  return failed === 0 ? 0 : 1;
}

/** Exports the ledger through the operator route into `path`; the HTTP status when refused. */
export async function exportTo(ctx: DemoContext, path: string): Promise<number | undefined> {
  const conn = {
    url: ctx.url,
    token: readOperatorToken(ctx.dir),
    inProcess: ctx.own,
    close: () => Promise.resolve(),
  };
  const a = await operatorDownload(conn, 'ledger-export', {}, path);
  return a.status === 200 ? undefined : a.status;
}
