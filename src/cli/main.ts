#!/usr/bin/env node
/**
 * `failclosed` entry point (bin): wires the process (argv, stdout, signals) to {@link runCli}.
 * `verify`, the auditor's offline command, loads the verifier alone, not the whole composition
 * (measured: 0.25 s of CPU in all for a missing bundle, against about 1.4 s). See docs/cli.md.
 */
import { commandIndex } from './command-word.js';

const argv = process.argv.slice(2);
const out = (t: string): void => void process.stdout.write(t);
const err = (t: string): void => void process.stderr.write(t);
const at = commandIndex(argv);

async function run(): Promise<number> {
  if (argv[at] === 'verify') {
    // As `runCli` does: everything after the word, `--data` ignored. No signal handler: Ctrl-C
    // stops a long verification at once.
    try {
      const { runVerifyCli } = await import('../verify/index.js');
      return await runVerifyCli(argv.slice(at + 1), { out, err });
    } catch (e) {
      err(`failclosed: ${e instanceof Error ? e.message : 'failed'}\n`);
      return 1;
    }
  }
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  process.once('SIGTERM', () => controller.abort());
  const { runCli } = await import('./run.js');
  return runCli(argv, {
    out,
    err,
    env: process.env,
    signal: controller.signal,
    onReload: (listener) => {
      process.on('SIGHUP', listener);
      return () => void process.off('SIGHUP', listener);
    },
  });
}

const code = await run();
process.exitCode = code;
// Signal listeners would keep nothing alive, but open handles of a failed start might: exit explicitly.
process.exit(code);
