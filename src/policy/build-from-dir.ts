/**
 * Builds a bundle from a source directory: the only file I/O of the policy layer.
 *
 * ```
 * bundle.json            { "name": "...", "settings"?: {...} }
 * schema.cedarschema     Cedar schema
 * schema/<any>.cedarschema  more of it, appended in name order (e.g. the actions
 *                        `failclosed policy pin-mcp` writes for an upstream MCP server)
 * policies/<id>.cedar    one policy each; the id is the file stem
 * tools/<any>.json       one ToolSpec each   (or: tools.json, an array; not both)
 * ```
 *
 * Tools are sorted by name so the hash does not depend on directory order.
 * (SPEC §6 "Policy as code", OE-INV-005/023)
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { canonicalize, deny, parseJson } from '../kernel/index.js';
import type { Deny, JsonObject, JsonValue } from '../kernel/index.js';
import { loadBundle } from './bundle.js';
import type { LoadBundleOptions } from './bundle.js';
import { POLICY_ID_RE } from './bundle-shape.js';
import { BUNDLE_FORMAT } from './types.js';
import type { LoadedBundle } from './types.js';

/** A built bundle: the canonical document text (store this), its hash, and the loaded bundle. */
export interface BuiltBundle {
  readonly text: string;
  readonly hash: string;
  readonly bundle: LoadedBundle;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

async function readText(path: string): Promise<string> {
  return utf8.decode(await readFile(path));
}

async function readJson(path: string): Promise<JsonValue> {
  return parseJson(await readFile(path));
}

async function list(dir: string, ext: string): Promise<string[] | null> {
  try {
    return (await readdir(dir)).filter((f) => f.endsWith(ext)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await readFile(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

async function readTools(dir: string): Promise<JsonValue[]> {
  const files = await list(join(dir, 'tools'), '.json');
  const single = await exists(join(dir, 'tools.json'));
  if (files !== null && single) throw new Error('use tools/ or tools.json, not both');
  let tools: JsonValue[];
  if (single) {
    const v = await readJson(join(dir, 'tools.json'));
    if (!Array.isArray(v)) throw new Error('tools.json must be an array');
    tools = [...(v as readonly JsonValue[])];
  } else {
    tools = [];
    for (const f of files ?? []) tools.push(await readJson(join(dir, 'tools', f)));
  }
  const nameOf = (t: JsonValue): string => {
    const n =
      typeof t === 'object' && t !== null && !Array.isArray(t) ? (t as JsonObject)['name'] : undefined;
    return typeof n === 'string' ? n : '';
  };
  return tools.sort((a, b) => (nameOf(a) < nameOf(b) ? -1 : nameOf(a) > nameOf(b) ? 1 : 0));
}

async function readSchema(dir: string): Promise<string> {
  const parts = [await readText(join(dir, 'schema.cedarschema'))];
  for (const f of (await list(join(dir, 'schema'), '.cedarschema')) ?? [])
    parts.push(`\n// schema/${f}\n${await readText(join(dir, 'schema', f))}`);
  return parts.join('');
}

/**
 * Reads a bundle source directory, assembles the document, and loads it through `loadBundle`
 * (so a built bundle passes exactly the checks a stored one does). Denies with
 * `ERR_POLICY_BUNDLE_INVALID` on a missing or unreadable file, malformed JSON or UTF-8, or
 * anything `loadBundle` rejects (with `options`, e.g. the builtin names). (SPEC §6, OE-INV-005)
 */
export async function buildBundleFromDir(
  dir: string,
  options: LoadBundleOptions = {},
): Promise<BuiltBundle | Deny> {
  try {
    const meta = await readJson(join(dir, 'bundle.json'));
    if (typeof meta !== 'object' || meta === null || Array.isArray(meta))
      throw new Error('bundle.json must be an object');
    const m = meta as JsonObject;
    for (const k of Object.keys(m))
      if (k !== 'name' && k !== 'settings') throw new Error(`bundle.json: unknown field "${k}"`);
    const policyFiles = await list(join(dir, 'policies'), '.cedar');
    const policies: Record<string, string> = {};
    for (const f of policyFiles ?? []) {
      const id = f.slice(0, -'.cedar'.length);
      // Before it is a member: a file `__proto__.cedar` would otherwise vanish from the bundle.
      if (!POLICY_ID_RE.test(id)) throw new Error(`policies/${f}: "${id}" is not a policy id`);
      policies[id] = await readText(join(dir, 'policies', f));
    }
    const document: Record<string, JsonValue> = {
      format: BUNDLE_FORMAT,
      name: m['name'] ?? null,
      policies,
      schema: await readSchema(dir),
      tools: await readTools(dir),
    };
    if (m['settings'] !== undefined) document['settings'] = m['settings'];
    const text = canonicalize(document);
    const bundle = loadBundle(text, undefined, options);
    if ('outcome' in bundle) return bundle;
    return Object.freeze({ text, hash: bundle.hash, bundle });
  } catch (err) {
    return deny('ERR_POLICY_BUNDLE_INVALID', err instanceof Error ? err.message : 'bundle source rejected');
  }
}
