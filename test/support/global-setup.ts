/**
 * Vitest global setup: the test processes' TMPDIR (see memory-tmpdir.ts), set before the worker
 * processes start so that they and every process they spawn inherit it; removed at the end.
 */
import { memoryTmpdir, removeTmpdir } from './memory-tmpdir.js';

export default function setup(): () => void {
  const dir = memoryTmpdir();
  if (dir !== undefined) process.env['TMPDIR'] = dir;
  return () => removeTmpdir(dir);
}
