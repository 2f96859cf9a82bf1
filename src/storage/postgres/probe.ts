/**
 * The PostgreSQL backend's readiness probe (STYLE "Readiness asks the real dependency, never a
 * flag"; L7 degraded mode): ready only when the database commits one row and reads it back
 * within the pool's deadlines. A stopped, unreachable, read-only or slow database fails it.
 */
import type { ReadinessProbe } from '../backend.js';
import type { PostgresPool } from './pool.js';
import { rowInt } from './rows.js';

/**
 * A probe named `name` that writes the row `name` of `readiness_probe` and reads back what it
 * wrote; never throws. Replicas share the row: a probe every few seconds each does not contend.
 */
export function createPostgresWriteProbe(name: string, db: PostgresPool): ReadinessProbe {
  const key = name;
  // Random start: two replicas writing the same mark at once cannot mistake each other's write for their own.
  let counter = Math.floor(Math.random() * 2 ** 40);
  return {
    name,
    async check(): Promise<boolean> {
      try {
        counter += 1;
        const mark = counter;
        const r = await db.pool.query<{ at: unknown }>(
          `INSERT INTO readiness_probe (probe, at) VALUES ($1, $2)
           ON CONFLICT (probe) DO UPDATE SET at = EXCLUDED.at RETURNING at`,
          [key, mark],
        );
        return r.rows.length === 1 && rowInt(r.rows[0]?.at, 'readiness_probe.at') === mark;
      } catch {
        return false;
      }
    },
  };
}
