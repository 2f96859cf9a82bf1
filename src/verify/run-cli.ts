/**
 * `failclosed verify FILE (--trust TRUST_FILE | --trusted-key VKEY ... | --trust-bundle-keys)
 * [--invariant ID] [--json] [--since CHECKPOINT_FILE] [--require-inventory]` as a library call (the bundle streamed from
 * disk), so the CLI only wires
 * argv (SPEC §5 "a verify.sh-style entry point for auditors", "Trust roots out of band"). Exit
 * codes: 0 all checks hold under pinned roots, 1 a violation, 2 unusable input or arguments,
 * 3 no pinned trust roots (and no `--trust-bundle-keys`).
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

const USAGE =
  'usage: verify FILE (--trust TRUST_FILE | --trusted-key VKEY ... | --trust-bundle-keys) [--invariant ID] [--json] [--since CHECKPOINT_FILE] [--require-inventory]\n';

const defaultIo: VerifyCliIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

interface Args {
  readonly file: string;
  readonly json: boolean;
  readonly invariant?: string;
  readonly since?: string;
  readonly trust?: string;
  readonly trustedKeys: readonly string[];
  readonly trustBundleKeys: boolean;
  readonly requireInventory: boolean;
}

const SINGLE = new Set(['--invariant', '--since', '--trust']);

function parseArgs(argv: readonly string[]): Args | string {
  let file: string | undefined;
  let json = false;
  let trustBundleKeys = false;
  let requireInventory = false;
  const trustedKeys: string[] = [];
  const flags: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--json') json = true;
    else if (a === '--trust-bundle-keys') trustBundleKeys = true;
    else if (a === '--require-inventory') requireInventory = true;
    else if (a === '--trusted-key') {
      const v = argv[++i];
      if (v === undefined) return '--trusted-key needs a value';
      trustedKeys.push(v);
    } else if (SINGLE.has(a)) {
      const v = argv[++i];
      if (v === undefined || a in flags) return `${a} needs exactly one value`;
      flags[a] = v;
    } else if (a.startsWith('--')) return `unknown option ${a}`;
    else if (file === undefined) file = a;
    else return 'only one bundle file';
  }
  if (file === undefined) return 'no bundle file';
  if (trustBundleKeys && (trustedKeys.length > 0 || flags['--trust'] !== undefined))
    return '--trust-bundle-keys cannot be combined with --trust or --trusted-key';
  const pick = (k: string): Record<string, string> =>
    flags[`--${k}`] !== undefined ? { [k]: flags[`--${k}`] ?? '' } : {};
  return {
    file,
    json,
    trustedKeys,
    trustBundleKeys,
    requireInventory,
    ...pick('invariant'),
    ...pick('since'),
    ...pick('trust'),
  };
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
  let trust: Buffer | undefined;
  try {
    if (io.readFile !== undefined) bundle = io.readFile(args.file);
    if (args.since !== undefined) since = read(args.since).toString('utf8');
    if (args.trust !== undefined) trust = read(args.trust);
  } catch {
    io.err('verify: cannot read the bundle, --since or --trust file\n');
    return 2;
  }
  const opts: VerifyOptions = {
    ...(args.invariant !== undefined ? { invariant: args.invariant } : {}),
    ...(since !== undefined ? { since } : {}),
    ...(args.trustedKeys.length > 0 ? { trustedKeys: args.trustedKeys } : {}),
    ...(trust !== undefined ? { trust } : {}),
    ...(args.trustBundleKeys ? { trustBundleKeys: true } : {}),
    ...(args.requireInventory ? { requireInventory: true } : {}),
  };
  const report = bundle !== undefined ? verifyBundle(bundle, opts) : await verifyBundleFile(args.file, opts);
  io.out(args.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  return report.exitCode;
}
