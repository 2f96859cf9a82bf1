#!/usr/bin/env node
/**
 * `failclosed` entry point (bin): wires the process (argv, stdout, signals) to {@link runCli}.
 * See docs/cli.md.
 */
import { runCli } from './run.js';

const controller = new AbortController();
process.once('SIGINT', () => controller.abort());
process.once('SIGTERM', () => controller.abort());

const code = await runCli(process.argv.slice(2), {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  env: process.env,
  signal: controller.signal,
  onReload: (listener) => {
    process.on('SIGHUP', listener);
    return () => void process.off('SIGHUP', listener);
  },
});
process.exitCode = code;
// Signal listeners would keep nothing alive, but open handles of a failed start might: exit explicitly.
process.exit(code);
