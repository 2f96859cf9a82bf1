/**
 * `failclosed replay TRACE_ID [--data DIR]` and `failclosed replay --bundle FILE [TRACE_ID]
 * (--trust FILE | --trusted-key VKEY ... | --trust-bundle-keys)`: argv → {@link replayBundleFile}
 * (GEI Determinism "forensic replay"). On a data directory the ledger is exported through the Gate
 * (ledgered `audit.export`, like `ledger export`) into a temporary file and checked against the
 * deployment's own trust roots unless `--trust` pins others. See docs/replay.md.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { connect, getJson, operatorDownload } from '../embedded/lean.js';
import type { ReplayReport } from '../replay/index.js';
import type { VerifyOptions } from '../verify/index.js';
import { operatorConnection } from './operators.js';

/** Where the command writes. */
export interface ReplayIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
}

export const REPLAY_USAGE = `  replay TRACE_ID [--trust TRUST_FILE] [--json] [--strict]
                                              re-derive the trace's decision, approvals and envelope
                                              claims with the pinned policy (docs/replay.md)
  replay --bundle FILE [TRACE_ID] (--trust TRUST_FILE | --trusted-key VKEY ... | --trust-bundle-keys)
         [--json] [--strict]                  the same over an exported audit bundle, offline
`;

interface Args {
  readonly trace?: string;
  readonly bundle?: string;
  readonly data?: string;
  readonly operator?: string;
  readonly trust?: string;
  readonly trustedKeys: readonly string[];
  readonly trustBundleKeys: boolean;
  readonly json: boolean;
  readonly strict: boolean;
}

const VALUED = new Set(['--bundle', '--data', '--operator', '--trust']);

function parseReplayArgs(argv: readonly string[]): Args | string {
  const flags: Record<string, string> = {};
  const trustedKeys: string[] = [];
  const positional: string[] = [];
  let json = false;
  let strict = false;
  let trustBundleKeys = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--json') json = true;
    else if (a === '--strict') strict = true;
    else if (a === '--trust-bundle-keys') trustBundleKeys = true;
    else if (a === '--trusted-key' || VALUED.has(a)) {
      const v = argv[++i];
      if (v === undefined || a in flags) return `${a} needs exactly one value`;
      if (a === '--trusted-key') trustedKeys.push(v);
      else flags[a] = v;
    } else if (a.startsWith('--')) return `unknown option ${a}`;
    else positional.push(a);
  }
  if (positional.length > 1) return 'one trace id at most';
  const trace = positional[0];
  const bundle = flags['--bundle'];
  if (bundle === undefined && trace === undefined) return 'a trace id, or --bundle FILE';
  if (bundle === undefined && (trustedKeys.length > 0 || trustBundleKeys))
    return '--trusted-key and --trust-bundle-keys apply to --bundle';
  if (trustBundleKeys && (trustedKeys.length > 0 || flags['--trust'] !== undefined))
    return '--trust-bundle-keys cannot be combined with --trust or --trusted-key';
  const pick = (k: string): Record<string, string> =>
    flags[`--${k}`] === undefined ? {} : { [k]: flags[`--${k}`] ?? '' };
  return {
    ...(trace === undefined ? {} : { trace }),
    ...pick('bundle'),
    ...pick('data'),
    ...pick('operator'),
    ...pick('trust'),
    trustedKeys,
    trustBundleKeys,
    json,
    strict,
  };
}

function verifyOptions(args: Args, trust: Buffer | undefined): VerifyOptions {
  return {
    ...(args.trustedKeys.length > 0 ? { trustedKeys: args.trustedKeys } : {}),
    ...(trust === undefined ? {} : { trust }),
    ...(args.trustBundleKeys ? { trustBundleKeys: true } : {}),
  };
}

/** Exports the data directory's ledger and its trust roots through the Gate into `work`. */
async function exportDataDir(
  dir: string,
  io: ReplayIo,
  operator: string | undefined,
  work: string,
): Promise<{ bundle: string; trust: Buffer } | string> {
  const conn = await connect(dir, operatorConnection(dir, io.env, operator));
  try {
    const bundle = join(work, 'bundle.jsonl');
    // A complete export: the decision's inputs (registrations, taint) may precede its trace.
    const a = await operatorDownload(conn, 'ledger-export', {}, bundle);
    if (a.status !== 200) return `the export was refused: ${JSON.stringify(a.body)}`;
    const roots = await getJson(conn, '/v1/trust-roots', false);
    if (roots.status !== 200) return 'the deployment did not give its trust roots';
    return { bundle, trust: Buffer.from(JSON.stringify(roots.body)) };
  } finally {
    await conn.close();
  }
}

function strictCode(report: ReplayReport, strict: boolean): number {
  if (!strict || report.exitCode !== 0) return report.exitCode;
  return report.summary.partial + report.summary.notRederivable > 0 ? 1 : 0;
}

/**
 * Runs `failclosed replay` on `argv` (the arguments without the `replay` word; a leading
 * `--data DIR` is accepted). Exit codes as {@link replayBundleFile}; 2 for bad arguments; with
 * `--strict` a decision that is partial or not re-derivable is exit 1.
 */
export async function runReplayCommand(argv: readonly string[], io: ReplayIo): Promise<number> {
  const args = parseReplayArgs(argv);
  if (typeof args === 'string') {
    io.err(`replay: ${args}\nusage:\n${REPLAY_USAGE}`);
    return 2;
  }
  let trust: Buffer | undefined;
  try {
    if (args.trust !== undefined) trust = readFileSync(args.trust);
  } catch {
    io.err('replay: cannot read the --trust file\n');
    return 2;
  }
  // The replay engine (policy evaluation and the verifier) is loaded for a replay only.
  const { formatReplayReport, replayBundleFile } = await import('../replay/index.js');
  let report: ReplayReport;
  if (args.bundle !== undefined) {
    report = await replayBundleFile(args.bundle, {
      verify: verifyOptions(args, trust),
      ...(args.trace === undefined ? {} : { traceId: args.trace }),
    });
  } else {
    const dir = resolve(args.data ?? io.env['FAILCLOSED_HOME'] ?? '.failclosed');
    const work = mkdtempSync(join(tmpdir(), 'failclosed-replay-'));
    try {
      const exported = await exportDataDir(dir, io, args.operator, work);
      if (typeof exported === 'string') {
        io.err(`replay: ${exported}\n`);
        return 1;
      }
      report = await replayBundleFile(exported.bundle, {
        verify: verifyOptions(args, trust ?? exported.trust),
        ...(args.trace === undefined ? {} : { traceId: args.trace }),
      });
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  io.out(args.json ? `${JSON.stringify(report, null, 2)}\n` : formatReplayReport(report));
  return strictCode(report, args.strict);
}
