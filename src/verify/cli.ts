/**
 * Stand-alone entry: `node dist/src/verify/cli.js FILE [options]`, the fallback behind
 * `scripts/verify.sh` for auditors who have only the verifier (SPEC §5). Same as
 * `failclosed verify`.
 */
import { runVerifyCli } from './run-cli.js';

process.exitCode = await runVerifyCli(process.argv.slice(2));
