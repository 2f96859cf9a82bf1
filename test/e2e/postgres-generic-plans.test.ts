/**
 * The plans of a governed call's statements on large tables (docs/storage.md "Prepared
 * statements"; issue "the governed call near its floor"). Each connection prepares its statements
 * once, and after five executions PostgreSQL may run a prepared statement under a generic plan,
 * chosen without the parameters' values. A generic plan that read a growing table whole (a
 * sequential scan of the ledger, the nonces, the breakers' buckets) would make every call slower
 * as the deployment ages, on every replica. Here one gate on its own schema serves an allowed call
 * and an escalated one (asked, approved by two approvers, retried and run) while every statement
 * with parameters (those the connections prepare) is recorded with them; the tables that grow with calls, sessions and approvals are
 * then grown to 50,000 rows each and analysed, and every recorded statement runs again under
 * generic plans (`plan_cache_mode = force_generic_plan`) in a transaction that is rolled back,
 * while `auto_explain` reports its plan and those of the statements of the functions it calls (the
 * request claim, the breaker admission): none may read a grown table whole (a sequential scan,
 * or an index scan without an index condition).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initDataDir } from '../../src/embedded/index.js';
import { nextSchema, useTestDatabase } from '../support/postgres.js';
import { allowedAndApprovedCalls, watchStatements } from './postgres-support.js';
import type { SentStatement } from './postgres-support.js';

const db = useTestDatabase('fc_e2e_plans');
let work: string;
/** The statements sent while a call is recorded, with their parameters; undefined while none is. */
let recording: SentStatement[] | undefined;
let restore: (() => void) | undefined;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'fc-e2e-plans-'));
  restore = watchStatements((sent) => {
    if (sent.text !== '' && sent.values.length > 0) recording?.push(sent);
  });
});
afterAll(() => {
  restore?.();
  rmSync(work, { recursive: true, force: true });
});

const ROWS = 50_000;

/**
 * Rows for every table that grows with calls (or with sessions, clients and approvals), in the
 * shapes the stores write. Keys are distinct from the call's own, so its statements find theirs.
 * Approvals are spread over ten approvers: a read of one approver's recent rows (a vote's burst
 * check) is then estimated at a small part of its table, as it is in use. Reads of an approver's
 * whole history would be caught only while they are a large part of a table: a vote reads the
 * approver's summary instead (docs/approvals.md "Limits").
 */
const GROW = [
  `INSERT INTO ledger_entries (idx, entry_hash, type, trace_id, request_id, tenant, jti, decision_id, body)
   SELECT 1000000 + g, md5(g::text),
          (ARRAY['gateway.accepted','decision','envelope.issued','execution.receipt','gateway.completed','approval.finalized'])[1 + g % 6],
          md5('t' || g / 6), 'req_' || md5('r' || g / 6), 'tenant-' || g % 50,
          CASE WHEN g % 6 = 2 THEN 'jti-' || g END, CASE WHEN g % 6 = 5 THEN 'dec-' || g END, '{}'
   FROM generate_series(1, ${ROWS}) g`,
  `INSERT INTO ledger_open_requests (accepted_idx, request_id, trace_id)
   SELECT 1000000 + g, 'req_' || md5('r' || g), md5('t' || g) FROM generate_series(1, ${ROWS}) g`,
  `INSERT INTO ledger_evidence (sha256, media_type, body)
   SELECT md5('e' || g) || md5('f' || g), 'application/json', '\\x7b7d' FROM generate_series(1, ${ROWS}) g`,
  `INSERT INTO envelope_nonces (jti, tenant, exp, decision_id, consumed_at)
   SELECT 'jti-' || g, 'tenant-' || g % 50, 2000000000 + g, 'dec-' || g, 1700000000000 + g
   FROM generate_series(1, ${ROWS}) g`,
  `INSERT INTO gate_request_nonces (identity, kind, value, seen_at)
   SELECT 'client-' || g % 100, (ARRAY['nonce','request_id'])[1 + g % 2], md5('n' || g), 1700000000000 + g
   FROM generate_series(1, ${ROWS}) g`,
  `INSERT INTO breaker_totals (principal, total)
   SELECT decode(md5('p' || g), 'hex'), 1 + g % 7 FROM generate_series(1, ${ROWS}) g`,
  `INSERT INTO breaker_buckets (kind, key, sub, bucket, until, hits, last_at)
   SELECT g % 3, decode(md5('k' || g / 10), 'hex'), CASE WHEN g % 3 = 2 THEN decode(md5('s' || g), 'hex') ELSE '\\x' END,
          1700000000000 + g, 1700000000000 + g + 60000, 1, 1700000000000 + g
   FROM generate_series(1, ${ROWS}) g`,
  `INSERT INTO governance_session_taint (session) SELECT 'session-' || g FROM generate_series(1, ${ROWS}) g`,
  `INSERT INTO governance_session_quarantine (session) SELECT 'session-' || g FROM generate_series(1, ${ROWS}) g`,
  `INSERT INTO approval_pending (decision_id, body, status, approvals, expires_at, created_at)
   SELECT 'dec-' || g, '{}', (ARRAY['pending','approved','rejected','expired','issued'])[1 + g % 5], '[]',
          1700000000000 + g, 1700000000000 + g
   FROM generate_series(1, ${ROWS}) g`,
  `INSERT INTO approval_votes (decision_id, approver, verdict, role, method, approval_sha256, at, ledger_index, candidate)
   SELECT 'dec-' || g, 'approver-' || g % 10, 'approve', 'treasury', 'key', md5('v' || g), 1700000000000 + g, g, ''
   FROM generate_series(1, ${ROWS}) g`,
  `INSERT INTO approval_used (approval_sha256, at) SELECT md5('u' || g), 1700000000000 + g FROM generate_series(1, ${ROWS}) g`,
  `INSERT INTO approval_views (decision_id, approver, at)
   SELECT 'dec-' || g, 'approver-' || g % 10, 1700000000000 + g FROM generate_series(1, ${ROWS}) g`,
  `INSERT INTO approval_activity (decision_id, approver, tenant, hour, at, flags, extra)
   SELECT 'dec-' || g, 'approver-' || g % 10, 'tenant-' || g % 50, g % 24, 1700000000000 + g, '[]', 0
   FROM generate_series(1, ${ROWS}) g`,
  `INSERT INTO approval_flags (decision_id, approver, tenant, at, flags, extra)
   SELECT 'dec-' || g, 'approver-' || g % 10, 'tenant-' || g % 50, 1700000000000 + g, '[]', 0
   FROM generate_series(1, ${ROWS}) g`,
  `INSERT INTO approval_grants (grant_id, body, tenant, tool, expires_at)
   SELECT 'grant-' || g, '{}', 'tenant-' || g % 50, 'tool-' || g % 20, 1700000000000 + g FROM generate_series(1, ${ROWS}) g`,
  `INSERT INTO approval_rate (approver, window_start, count)
   SELECT 'approver-' || g % 10, g, 1 FROM generate_series(1, ${ROWS}) g`,
];

/** The grown tables, as plans name them. */
const GROWN = new Set(GROW.map((sql) => /INSERT INTO (\w+)/.exec(sql)?.[1] ?? ''));

/** A parameter as an SQL literal of unknown type: the prepared statement's parameter types decide. */
function literal(c: pg.Client, v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (Buffer.isBuffer(v)) return `'\\x${v.toString('hex')}'`;
  if (Array.isArray(v)) {
    const items = v.map((x) =>
      x === null ? 'NULL' : Buffer.isBuffer(x) ? `"\\\\x${x.toString('hex')}"` : JSON.stringify(String(x)),
    );
    return c.escapeLiteral(`{${items.join(',')}}`);
  }
  if (v instanceof Date) return c.escapeLiteral(v.toISOString());
  if (typeof v === 'string') return c.escapeLiteral(v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return `'${v}'`;
  return c.escapeLiteral(JSON.stringify(v));
}

interface PlanNode {
  readonly 'Node Type': string;
  readonly 'Relation Name'?: string;
  readonly 'Index Cond'?: string;
  readonly Plans?: readonly PlanNode[];
}

/**
 * The grown tables `node` reads whole: a sequential scan, or an index scan with no index
 * condition (the whole index, in its order). An index range with a filter on top is not caught:
 * what it reads depends on the values, which a generic plan does not know.
 */
function wholeReads(node: PlanNode): string[] {
  const table = node['Relation Name'];
  const whole =
    table !== undefined &&
    GROWN.has(table) &&
    (node['Node Type'] === 'Seq Scan' ||
      (/^Index (Only )?Scan$/.test(node['Node Type']) && node['Index Cond'] === undefined));
  return [...(whole ? [`${node['Node Type']} on ${table}`] : []), ...(node.Plans ?? []).flatMap(wholeReads)];
}

describe('generic plans of a governed call on grown tables (docs/storage.md "Prepared statements")', () => {
  it('no statement of an allowed or an approved call reads a grown table whole under a generic plan', async () => {
    const schema = nextSchema();
    const dir = join(work, 'data');
    await initDataDir(dir, { backend: `${db.url}?schema=${schema}` });
    const recorded: SentStatement[] = [];
    await allowedAndApprovedCalls(dir, { port: 0, executionPort: 0 }, (on) => {
      recording = on ? recorded : undefined;
    });
    const texts = new Set(recorded.map((s) => s.text));
    // The client's key, the request claim, the appends, the governance and approval reads, the
    // breaker admission, the Execution Layer's read and its nonce (postgres-rounds.test.ts).
    expect(texts.size).toBeGreaterThanOrEqual(8);

    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    /** The plans auto_explain reports: each statement's, and those of the statements it runs. */
    const plans: { query: string; plan: PlanNode }[] = [];
    c.on('notice', (m: { message?: string | undefined }) => {
      // auto_explain's message: "duration: … ms  plan:" and the plan as JSON.
      const at = m.message?.indexOf('plan:\n{') ?? -1;
      if (m.message === undefined || at < 0) return;
      const logged = JSON.parse(m.message.slice(at + 'plan:\n'.length)) as {
        'Query Text': string;
        Plan: PlanNode;
      };
      plans.push({ query: logged['Query Text'], plan: logged.Plan });
    });
    try {
      await c.query(`SET search_path TO ${schema}`);
      for (const sql of GROW) await c.query(sql);
      for (const table of GROWN) await c.query(`ANALYZE ${table}`);
      // Every statement planned without its parameters' values, as after five executions; the
      // statements of the functions a statement calls too (plpgsql plans them the same way).
      await c.query('SET plan_cache_mode = force_generic_plan');
      await c.query("LOAD 'auto_explain'");
      await c.query('SET auto_explain.log_min_duration = 0');
      await c.query('SET auto_explain.log_nested_statements = on');
      await c.query("SET auto_explain.log_format = 'json'");
      await c.query('SET client_min_messages = log');
      let n = 0;
      for (const { text, values } of recorded) {
        n += 1;
        await c.query(`PREPARE fc_plan_${n} AS ${text}`);
        // The request claim with a fresh nonce and request id runs its every statement; with the
        // recorded ones it would stop at its first (the call's own rows are there).
        const fresh = text.includes('gate_claim_request(')
          ? values.map((v, i) => (i === 1 || i === 2 ? `fresh-${n}-${i}` : v))
          : values;
        const args = fresh.map((v) => literal(c, v)).join(', ');
        // Run for its plans, then undone: the recorded call's own rows are already there, so its
        // claims answer "replayed" and its appends "not at the head", as a retry's would.
        await c.query('BEGIN');
        try {
          await c.query(`EXECUTE fc_plan_${n}(${args})`);
        } finally {
          await c.query('ROLLBACK');
        }
      }
      const found = plans.flatMap(({ query, plan }) =>
        wholeReads(plan).map((t) => `${t}: ${query.replace(/\s+/g, ' ').trim().slice(0, 200)}`),
      );
      // Every statement was planned, and both functions a call runs: the request claim and the breaker admission.
      expect(plans.filter((p) => p.query.startsWith('PREPARE fc_plan_')).length).toBe(recorded.length);
      expect(plans.some((p) => /INSERT INTO gate_request_nonces[\s\S]*'request_id'/.test(p.query))).toBe(
        true,
      );
      expect(plans.some((p) => p.query.includes('INSERT INTO breaker_buckets'))).toBe(true);
      expect(found).toEqual([]);
    } finally {
      await c.end();
    }
  }, 120_000);
});
