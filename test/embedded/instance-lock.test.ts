/**
 * One open deployment per data directory (SPEC §4 "one writer"): the data directory's writer
 * lock is refused to a second open in this process and to another live process, and a process
 * killed with SIGKILL leaves nothing behind that blocks the next start.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lockDataDir } from '../../src/embedded/instance-lock.js';
import { killHard, startHolder } from '../storage/holder-process.js';
import type { HolderProcess } from '../storage/holder-process.js';

let dir: string;
const unlocks: (() => void)[] = [];
const holders: HolderProcess[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'fc-instance-lock-'));
});
afterEach(async () => {
  for (const h of holders.splice(0)) await killHard(h);
  for (const unlock of unlocks.splice(0)) unlock();
  rmSync(dir, { recursive: true, force: true });
});

function lock(): () => void {
  const unlock = lockDataDir(dir);
  unlocks.push(unlock);
  return unlock;
}

describe('the data directory lock (SPEC §4 one writer)', () => {
  it('refuses a second open in the same process until the first is released; release is idempotent', () => {
    const unlock = lock();
    expect(() => lockDataDir(dir)).toThrow(/already open in this process/);
    unlock();
    unlock();
    lock();
  });

  it('refuses while another live process holds the lock, and opens once that process was killed with SIGKILL', async () => {
    const holder = await startHolder(['sqlite', join(dir, 'writer.lock')]);
    holders.push(holder);
    expect(() => lockDataDir(dir)).toThrow(/in use by another process/);
    await killHard(holder);
    expect(() => lock()).not.toThrow();
  });
});
