/**
 * Helpers shared by the end-to-end tests of the PostgreSQL deployment: the demo client of a data
 * directory, a revised demo policy (another bundle hash, the same rules) and its activation
 * through the operator endpoint.
 */
import { createClient } from '../../src/client/index.js';
import type { FailclosedClient } from '../../src/client/index.js';
import { DEMO_CLIENT, demoPolicyDir, readClientFile, readOperatorToken } from '../../src/embedded/index.js';
import type { EmbeddedInstance } from '../../src/embedded/index.js';
import { canonicalBytes, isDeny, parseJson, sha256Hex } from '../../src/kernel/index.js';
import { buildBundleFromDir } from '../../src/policy/index.js';

/** The demo client of `dir`, calling `instance`. */
export function clientOf(dir: string, instance: EmbeddedInstance): FailclosedClient {
  const file = readClientFile(dir, DEMO_CLIENT.identity);
  return createClient({ url: instance.url, identity: file.identity, tenant: file.tenant, key: file.key });
}

/** The demo policy with another description: another bundle hash, the same rules. */
export async function revisedDemoBundle(description: string): Promise<{ text: string; hash: string }> {
  const built = await buildBundleFromDir(demoPolicyDir());
  if (isDeny(built)) throw new Error(built.code);
  const doc = JSON.parse(built.text) as { settings: Record<string, unknown> };
  doc.settings['description'] = description;
  const text = JSON.stringify(doc);
  return { text, hash: sha256Hex(canonicalBytes(parseJson(text))) };
}

/** Activates `bundle` (document text) on `instance` with the operator token of `dir`. */
export function activate(dir: string, instance: EmbeddedInstance, bundle: string): Promise<Response> {
  return fetch(`${instance.url}/v1/admin/policy-activate`, {
    method: 'POST',
    headers: { authorization: `Bearer ${readOperatorToken(dir)}`, 'content-type': 'application/json' },
    body: JSON.stringify({ bundle, reason: 'revised policy' }),
  });
}
