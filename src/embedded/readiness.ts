/**
 * Readiness by probing (STYLE "Readiness asks the real dependency, never a flag"; L7 degraded
 * mode; OE-INV-025 operations): `/readyz` answers ready only when each store completes a real,
 * durable write and read back (the storage backend's probes), and the data directory's file
 * system has room.
 */
import { statfsSync } from 'node:fs';
import type { ReadinessProbe } from '../storage/index.js';

export { createSqliteWriteProbe } from '../storage/index.js';
export type { ReadinessProbe, SqliteWriteProbe } from '../storage/index.js';

/**
 * A probe that passes while the file system holding `dir` has at least `minFreeBytes` available
 * to this process (`statfs` `bavail`); `false` when it cannot tell.
 */
export function createDiskSpaceProbe(dir: string, minFreeBytes: number): ReadinessProbe {
  if (!Number.isSafeInteger(minFreeBytes) || minFreeBytes < 0)
    throw new TypeError('minFreeBytes must be a non-negative integer');
  return {
    name: 'disk',
    check(): boolean {
      try {
        const s = statfsSync(dir, { bigint: true });
        return s.bavail * s.bsize >= BigInt(minFreeBytes);
      } catch {
        return false;
      }
    },
  };
}
