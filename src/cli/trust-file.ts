/** Fetching the trust file the way an auditor pins it (docs/COMPLIANCE.md), for the demo. */
import { writeFileSync } from 'node:fs';
import { parseJson } from '../kernel/index.js';

/**
 * Saves the deployment's trust roots (`GET /v1/trust-roots`, the same document as
 * `failclosed trust-roots`) to `path`; false when the gate publishes none.
 */
export async function saveTrustRoots(url: string, path: string): Promise<boolean> {
  const res = await fetch(new URL('/v1/trust-roots', url));
  if (res.status !== 200) return false;
  writeFileSync(path, `${JSON.stringify(parseJson(new Uint8Array(await res.arrayBuffer())), null, 2)}\n`);
  return true;
}
