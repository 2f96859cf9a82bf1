/**
 * A second process holding the data directory's writer lock or a PostgreSQL instance lease
 * (`writer-lock-holder.mjs`, run over the built code like the other process tests), so that a
 * test can kill it with SIGKILL and watch another take over (SPEC §4 "one writer", §5).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/paths.js';

const SCRIPT = join(REPO_ROOT, 'test', 'storage', 'writer-lock-holder.mjs');

/** A running holder. */
export interface HolderProcess {
  readonly child: ChildProcess;
  /** The epoch of its lease (file lock); 0 for a PostgreSQL instance lease. */
  readonly epoch: number;
  /** The instance id of its PostgreSQL instance lease; '' for a file lock. */
  readonly instance: string;
  /** Resolves once it has exited. */
  readonly exited: Promise<void>;
}

/** Starts a holder with `args` (see the script) and resolves once it holds the lock. */
export async function startHolder(args: readonly string[]): Promise<HolderProcess> {
  if (!existsSync(join(REPO_ROOT, 'dist', 'src', 'storage', 'writer-lock.js')))
    throw new Error('the holder process runs the built code: run `npm run build` first');
  const child = spawn(process.execPath, [SCRIPT, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const held = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^held (\S+)\n/.exec(out);
      if (m?.[1] !== undefined) resolve(m[1]);
    });
    void exited.then(() => reject(new Error(`the holder exited without the lock: ${out}${err}`)));
  });
  const epoch = /^\d+$/.test(held) ? Number(held) : 0;
  return { child, epoch, instance: epoch === 0 && !/^\d+$/.test(held) ? held : '', exited };
}

/** Kills `holder` with SIGKILL and resolves once it is gone. */
export async function killHard(holder: HolderProcess): Promise<void> {
  holder.child.kill('SIGKILL');
  await holder.exited;
}
