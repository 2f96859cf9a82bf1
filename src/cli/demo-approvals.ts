/**
 * The demo's human-approval steps (SPEC §7 scenarios 11 and 14; OE-INV-019/020, L7 Break-glass):
 * a transfer above the threshold waits, forged and agent approvals are refused, two distinct
 * approvers approve with the `failclosed approvals approve` command and the retry runs; break-glass
 * without role, reason or TTL is refused, with them it lets a transfer run flagged for a review
 * another person closes; and `verify` proves who approved what before it ran. The approval
 * commands run against the demo's own instance (announced for the step), or through a deployment
 * against the Control Plane process serving the data directory, like an operator's shell.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { createApproverClient } from '../client/index.js';
import {
  announceServer,
  DEMO_CLIENT,
  readClientFile,
  readOperatorToken,
  withdrawServer,
} from '../embedded/index.js';
import { parseJson } from '../kernel/index.js';
import type { JsonObject } from '../kernel/index.js';
import { generateSigningKey } from '../kernel/signing/index.js';
import { verifyBundleFile } from '../verify/index.js';
import { approverKeyPath } from './approver-keys.js';
import { runApprovalCommand } from './approvals.js';
import { exportTo, type DemoContext, type DemoObservation, type DemoStep } from './demo.js';
import { saveTrustRoots } from './trust-file.js';

const positionals = (argv: readonly string[]): string[] =>
  argv.filter((a, i) => !a.startsWith('--') && !(argv[i - 1] ?? '').startsWith('--'));

/**
 * Each demo approver's own home, outside the data directory (beside it: a re-run over `--data`
 * finds the keys again): approver keys never live on the gate's side (OE-INV-020).
 */
function homeOf(ctx: DemoContext, name: string): string {
  return join(dirname(ctx.dir), `${basename(ctx.dir)}.demo-approvers`, name);
}

/**
 * Runs `failclosed <argv>` (an approval command) against the demo's deployment; exit code and
 * output. A command run `--as NAME` (or an `approvers keygen NAME`) runs in that approver's home.
 */
async function cli(ctx: DemoContext, ...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const as = argv[argv.indexOf('--as') + 1];
  const person = argv.includes('--as') ? as : argv[1] === 'keygen' ? argv[2] : undefined;
  // The demo's own instance is announced for the command; a deployment's process announced itself.
  if (ctx.own) announceServer(ctx.dir, ctx.url);
  try {
    const code = await runApprovalCommand(
      {
        out: (t) => (out += t),
        err: (t) => (err += t),
        env: person === undefined ? {} : { XDG_CONFIG_HOME: homeOf(ctx, person) },
      },
      ctx.dir,
      positionals(argv),
      parseFlags(argv),
      undefined,
      // Through a deployment: its Control Plane process, never an instance of the demo's own
      // started should that process not answer for a moment.
      ctx.own
        ? undefined
        : {
            url: ctx.url,
            token: readOperatorToken(ctx.dir),
            inProcess: false,
            close: () => Promise.resolve(),
          },
    );
    return { code, out, err };
  } finally {
    if (ctx.own) withdrawServer(ctx.dir);
  }
}

function parseFlags(argv: readonly string[]): Record<string, string> {
  const flags: Record<string, string> = {};
  for (let i = 0; i < argv.length; i += 1) {
    const a = argv[i] ?? '';
    if (a.startsWith('--') && argv[i + 1] !== undefined) flags[a.slice(2)] = argv[(i += 1)] ?? '';
  }
  return flags;
}

/**
 * The approver makes a key in their own home (`approvers keygen`), and the operator registers
 * its public half for the demo tenant (`approvers add --public-key`); skipped when the key
 * exists already (a re-run over `--data`).
 */
async function approver(
  ctx: DemoContext,
  name: string,
  roles: string,
  tenant: string = DEMO_CLIENT.tenant,
): Promise<void> {
  if (existsSync(approverKeyPath({ XDG_CONFIG_HOME: homeOf(ctx, name) }, name))) return;
  const made = await cli(ctx, 'approvers', 'keygen', name);
  if (made.code !== 0) throw new Error(`approvers keygen ${name}: ${made.err.trim()}`);
  const pub = join(ctx.work, `${name}.pub.json`);
  writeFileSync(pub, made.out);
  const r = await cli(
    ctx,
    'approvers',
    'add',
    name,
    '--role',
    roles,
    '--tenant',
    tenant,
    '--public-key',
    pub,
  );
  if (r.code !== 0) throw new Error(`approvers add ${name}: ${r.err.trim()}`);
}

/** Submits an approval the way an attacker would: a statement signed with `key` in the name of `as`. */
async function forged(
  ctx: DemoContext,
  decisionId: string,
  as: string,
  key: Readonly<Record<string, unknown>> | ReturnType<typeof generateSigningKey>,
): Promise<string> {
  const c = createApproverClient({
    url: ctx.url,
    name: as,
    key,
    authorization: `Bearer ${readOperatorToken(ctx.dir)}`,
  });
  const a = await c.decide(decisionId, 'approve', 'looks fine to me');
  const code = (a.body as JsonObject)['code'];
  return typeof code === 'string' ? code : `HTTP ${a.status}`;
}

const codeOf = (r: { out: string; err: string }): string => {
  try {
    const v = parseJson(r.err.trim() || r.out) as JsonObject;
    return typeof v['code'] === 'string' ? v['code'] : typeof v['outcome'] === 'string' ? v['outcome'] : '?';
  } catch {
    return '?';
  }
};

let n = 0;
const session = (): string => `demo-approvals-${process.pid}-${(n += 1)}`;
const TRANSFER = { from_account: 'acct_ops', to_account: 'acct_vendor', amount: 5000, currency: 'USD' };

async function approvalStep(ctx: DemoContext): Promise<DemoObservation> {
  await approver(ctx, 'alice', 'treasury');
  await approver(ctx, 'bob', 'treasury');
  // A treasury approver of another tenant: its vote on an acme call counts for nothing.
  await approver(ctx, 'gus', 'treasury', 'globex');
  const s = session();
  const first = await ctx.client.call('transfer_funds', TRANSFER, { session: s });
  if (first.outcome !== 'pending')
    return {
      observed:
        first.outcome === 'executed'
          ? 'executed without approval'
          : first.outcome === 'unknown'
            ? 'answer lost (may have run)'
            : first.code,
    };
  const id = first.decision_id;
  const agentCode = await forged(
    ctx,
    id,
    DEMO_CLIENT.identity,
    readClientFile(ctx.dir, DEMO_CLIENT.identity).key,
  );
  const forgedCode = await forged(ctx, id, 'alice', generateSigningKey());
  const otherTenant = codeOf(
    await cli(ctx, 'approvals', 'approve', id, '--as', 'gus', '--justification', 'not my tenant'),
  );
  const a = await cli(
    ctx,
    'approvals',
    'approve',
    id,
    '--as',
    'alice',
    '--justification',
    'invoice 42 matches the order',
  );
  const twice = codeOf(
    await cli(ctx, 'approvals', 'approve', id, '--as', 'alice', '--justification', 'again'),
  );
  const early = await ctx.client.call('transfer_funds', TRANSFER, {
    session: s,
    requestId: first.request_id,
  });
  const b = await cli(
    ctx,
    'approvals',
    'approve',
    id,
    '--as',
    'bob',
    '--justification',
    'vendor verified by phone',
  );
  const ran = await ctx.client.call('transfer_funds', TRANSFER, { session: s, requestId: first.request_id });
  const detail = `202 pending ${id.slice(0, 12)}…; agent as approver ${agentCode}; forged signature ${forgedCode}; globex approver ${otherTenant}; alice ${a.code === 0 ? 'ok' : codeOf(a)}; alice again ${twice}; retry ${early.outcome}; bob ${b.code === 0 ? 'ok' : codeOf(b)}; retry ${ran.outcome}`;
  const refusals =
    agentCode === 'ERR_APPROVER_AGENT' &&
    forgedCode === 'ERR_APPROVAL_SIGNATURE' &&
    otherTenant === 'ERR_APPROVER_TENANT' &&
    twice === 'ERR_APPROVAL_DUPLICATE' &&
    early.outcome === 'pending';
  if (!refusals) return { observed: 'a forged or early approval was not refused as expected', detail };
  return { observed: ran.outcome === 'executed' ? 'executed' : ran.code, detail };
}

async function breakGlassStep(ctx: DemoContext): Promise<DemoObservation> {
  await approver(ctx, 'dave', 'L4');
  await approver(ctx, 'erin', 'L5');
  await approver(ctx, 'carol', 'finance');
  const grant = (as: string, ttl: string, reason = 'payroll outage INC-7') =>
    cli(
      ctx,
      'break-glass',
      '--as',
      as,
      '--tool',
      'transfer_funds',
      '--tenant',
      DEMO_CLIENT.tenant,
      '--reason-category',
      'incident',
      '--reason',
      reason,
      '--ttl',
      ttl,
    );
  const noRole = codeOf(await grant('carol', '600'));
  const longTtl = codeOf(await grant('dave', '999999'));
  const ok = await grant('dave', '600');
  if (ok.code !== 0) return { observed: `break-glass refused: ${codeOf(ok)}` };
  const ran = await ctx.client.call('transfer_funds', { ...TRANSFER, amount: 4000 }, { session: session() });
  const reviews = (
    parseJson((await cli(ctx, 'reviews', 'list')).out) as { reviews: JsonObject[] }
  ).reviews.filter((r) => r['status'] === 'open');
  const reviewId = reviews.at(-1)?.['review_id'];
  if (typeof reviewId !== 'string') return { observed: 'no review item was opened' };
  const own = codeOf(
    await cli(ctx, 'reviews', 'close', reviewId, '--as', 'dave', '--notes', 'closing my own'),
  );
  const closed = await cli(
    ctx,
    'reviews',
    'close',
    reviewId,
    '--as',
    'erin',
    '--notes',
    'justified: payroll restored',
  );
  const detail = `finance role ${noRole}; TTL 999999 s ${longTtl}; L4 grant ok; transfer ${ran.outcome}; review ${reviewId.slice(0, 12)}… by dave ${own}, by erin ${closed.code === 0 ? 'closed' : codeOf(closed)}`;
  if (
    noRole !== 'ERR_BREAK_GLASS_DENIED' ||
    longTtl !== 'ERR_BREAK_GLASS_DENIED' ||
    own !== 'ERR_APPROVAL_SELF' ||
    closed.code !== 0
  ) {
    return { observed: 'break-glass was not refused or reviewed as expected', detail };
  }
  return { observed: ran.outcome === 'executed' ? 'executed' : ran.code, detail };
}

async function evidenceStep(ctx: DemoContext): Promise<DemoObservation> {
  const path = join(ctx.work, 'audit-bundle-approvals.jsonl');
  const refused = await exportTo(ctx, path);
  if (refused !== undefined) return { observed: `export failed (HTTP ${refused})` };
  const trustPath = join(ctx.work, 'trust-roots-approvals.json');
  if (!(await saveTrustRoots(ctx.url, trustPath))) return { observed: 'no trust roots published' };
  // Approvals verify only under the pinned approver keys, never the bundle's own.
  const report = await verifyBundleFile(path, { trust: readFileSync(trustPath) });
  const check = report.checks.find((c) => c.id === 'approvals');
  const bundle = {
    entries: readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('{"record":"entry"'))
      .map((l) => (parseJson(l) as { entry: { type: string; actor: { id: string } } }).entry),
  };
  const who = [
    ...new Set(bundle.entries.filter((e) => e.type === 'approval.added').map((e) => e.actor.id)),
  ].join(', ');
  return {
    observed:
      report.ok && check?.status === 'pass'
        ? 'verified'
        : `verify: ${check?.status ?? 'no approvals check'}, ok=${String(report.ok)}`,
    detail: `approvals by ${who || 'nobody'} precede their envelopes and receipts; break-glass use with its review`,
  };
}

/** The approval, break-glass and evidence steps, appended to the demo's step list. */
export const APPROVAL_DEMO_STEPS: readonly DemoStep[] = [
  {
    scenario: 11,
    title:
      'approval: transfer 5000 USD waits; agent, forged and other-tenant approvals refused; two treasury approvers approve from the CLI; the retry runs',
    expect: 'executed',
    run: approvalStep,
  },
  {
    scenario: 14,
    title:
      'break-glass: refused without L4/L5 role or with a long TTL; an L4 grant lets a transfer run, flagged; another person closes the review',
    expect: 'executed',
    run: breakGlassStep,
  },
  {
    title: 'evidence: export the ledger and verify who approved what before it ran',
    expect: 'verified',
    run: evidenceStep,
  },
];
