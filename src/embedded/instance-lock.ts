/**
 * One open deployment per data directory. Crash recovery records every open request of the
 * ledger as abandoned, which is true only when no other process is still serving them; and the
 * ledger has a single writer (SPEC §4). So opening takes `<data>/instance.lock` (created
 * exclusively, holding the owner's pid) and refuses while a live process holds it. A lock left by
 * a process that no longer exists (kill -9) is taken over.
 */
import { openSync, closeSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';

const held = new Set<string>();

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function ownerOf(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes the data directory's instance lock; returns its release. Throws when another live process
 * (or another open instance in this process) holds it.
 */
export function lockDataDir(root: string): () => void {
  const path = join(root, 'instance.lock');
  if (held.has(path)) throw new Error(`the data directory ${root} is already open in this process`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      held.add(path);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        held.delete(path);
        if (ownerOf(path) === process.pid) rmSync(path, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = ownerOf(path);
      if (owner !== undefined && owner !== process.pid && alive(owner))
        throw new Error(`the data directory ${root} is in use by process ${owner}`);
      // Left by a process that is gone (or by this one, released without cleanup): take it over.
      rmSync(path, { force: true });
    }
  }
  throw new Error(`the data directory ${root} is locked`);
}
