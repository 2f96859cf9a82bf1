/**
 * `failclosed verify FILE [--invariant ID] [--json] [--since CHECKPOINT_FILE] [--trusted-key VKEY]`
 * as a library call (the bundle streamed from disk), so the CLI only wires argv (SPEC §5 "a verify.sh-style entry point for
 * auditors"). Exit codes: 0 all checks hold, 1 a violation, 2 unusable input or arguments.
 */
import { readFileSync } from 'node:fs';
import { formatReport } from './report.js';
import type { VerifyOptions } from './types.js';
import { verifyBundle } from './verify-bundle.js';
import { verifyBundleFile } from './verify-file.js';

/** Where the CLI reads and writes; defaults to the process. */
export interface VerifyCliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  /** Reads a file whole; when absent the bundle is streamed from disk (`verifyBundleFile`). */
  readonly readFile?: (path: string) => Buffer;
}

const USAGE = 'usage: verify FILE [--invariant ID] [--json] [--since CHECKPOINT_FILE] [--trusted-key VKEY]\n';

const defaultIo: VerifyCliIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

interface Args {
  readonly file: string;
  readonly json: boolean;
  readonly invariant?: string;
  readonly since?: string;
  readonly trustedKey?: string;
}

function parseArgs(argv: readonly string[]): Args | string {
  let file: string | undefined;
  let json = false;
  const flags: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--json') json = true;
    else if (a === '--invariant' || a === '--since' || a === '--trusted-key') {
      const v = argv[++i];
      if (v === undefined || a in flags) return `${a} needs exactly one value`;
      flags[a] = v;
    } else if (a.startsWith('--')) return `unknown option ${a}`;
    else if (file === undefined) file = a;
    else return 'only one bundle file';
  }
  if (file === undefined) return 'no bundle file';
  const pick = (k: string): Record<string, string> =>
    flags[`--${k}`] !== undefined ? { [k === 'trusted-key' ? 'trustedKey' : k]: flags[`--${k}`] ?? '' } : {};
  return { file, json, ...pick('invariant'), ...pick('since'), ...pick('trusted-key') };
}

/**
 * Runs the verifier on `argv` (the arguments after the `verify` word), prints the report (text,
 * or JSON with `--json`) and resolves with the exit code. Never rejects.
 */
export async function runVerifyCli(argv: readonly string[], io: VerifyCliIo = defaultIo): Promise<number> {
  const args = parseArgs(argv);
  if (typeof args === 'string') {
    io.err(`verify: ${args}\n${USAGE}`);
    return 2;
  }
  const read = io.readFile ?? ((p: string) => readFileSync(p));
  let bundle: Buffer | undefined;
  let since: string | undefined;
  try {
    if (io.readFile !== undefined) bundle = io.readFile(args.file);
    if (args.since !== undefined) since = read(args.since).toString('utf8');
  } catch {
    io.err('verify: cannot read the bundle or --since file\n');
    return 2;
  }
  const opts: VerifyOptions = {
    ...(args.invariant !== undefined ? { invariant: args.invariant } : {}),
    ...(since !== undefined ? { since } : {}),
    ...(args.trustedKey !== undefined ? { trustedKey: args.trustedKey } : {}),
  };
  const report = bundle !== undefined ? verifyBundle(bundle, opts) : await verifyBundleFile(args.file, opts);
  io.out(args.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  return report.exitCode;
}
