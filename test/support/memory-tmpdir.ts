/**
 * Where the test processes put their temporary directories: under `/dev/shm` (memory) when it
 * is a tmpfs with room to spare, else the system's. Every test makes its own directory below it
 * (data directories, SQLite ledgers, exported bundles), and SQLite syncs each commit: on a disk
 * shared with other work those syncs were most of the time of the ledger-heavy files. The code
 * under test runs unchanged (it still syncs; the kernel answers at once); crash tests kill
 * processes, which loses nothing of what reached the page cache either way.
 */
import { mkdtempSync, rmSync, statfsSync } from 'node:fs';
import { join } from 'node:path';

const SHM = '/dev/shm';
/** tmpfs magic number (statfs f_type). */
const TMPFS = 0x01021994;
/** Room the largest files need (an export of 100k+ entries, its ledger), with margin. */
const NEEDED_BYTES = 4 * 1024 ** 3;

/** A fresh directory under `/dev/shm` when it is a roomy tmpfs; `undefined` otherwise. */
export function memoryTmpdir(): string | undefined {
  if (process.env['FC_TEST_DISK_TMP'] === '1') return undefined;
  try {
    const s = statfsSync(SHM);
    if (s.type !== TMPFS || s.bavail * s.bsize < NEEDED_BYTES) return undefined;
    return mkdtempSync(join(SHM, 'fc-test-'));
  } catch {
    return undefined;
  }
}

/** Removes what {@link memoryTmpdir} made (tests remove their own directories; this is the rest). */
export function removeTmpdir(dir: string | undefined): void {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
}
