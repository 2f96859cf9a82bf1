/**
 * The PostgreSQL driver (`pg`), loaded by the first pool or client made: a deployment on SQLite
 * never loads it (about 0.09 s of CPU at every process start otherwise). `pg` is CommonJS (its
 * ES module entry re-exports the same `require` entry), so it loads here synchronously.
 */
import { createRequire } from 'node:module';
import type pg from 'pg';

const require = createRequire(import.meta.url);
let loaded: typeof pg | undefined;

/** `pg`, loaded on the first call. */
export function pgDriver(): typeof pg {
  loaded ??= require('pg') as typeof pg;
  return loaded;
}
