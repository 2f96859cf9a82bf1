/**
 * Hash-addressed, immutable policy bundles. A bundle is one JSON document; its hash is the
 * lower-hex SHA-256 of its RFC 8785 canonical bytes, so any edit, however small, is another
 * bundle. Loading checks everything once: strict JSON, exact members, hash, Cedar schema and
 * policies (strict validation), annotations, and every tool's closed JSON Schema.
 * (SPEC §6 "Policy as code", §7 scenario 13, OE-INV-005/014/023, L7 policy tampering)
 */
import {
  canonicalBytes,
  deny,
  FailclosedError,
  hexDigestEquals,
  parseJson,
  sha256Hex,
} from '../kernel/index.js';
import type { Deny, JsonValue } from '../kernel/index.js';
import { checkAdapterSpecs } from './adapter-spec.js';
import type { AdapterCheckOptions } from './adapter-spec.js';
import { parseBundleShape } from './bundle-shape.js';
import { compileCedar } from './cedar.js';
import type { CedarCompiled } from './cedar.js';
import { compileParamsSchema } from './json-schema.js';
import type { ParamsValidator } from './json-schema.js';
import type { LoadedBundle, PolicyBundleDocument } from './types.js';

/** Options of {@link loadBundle}. */
export type LoadBundleOptions = AdapterCheckOptions;

/** Size limit of a bundle document. */
export const MAX_BUNDLE_BYTES = 4 * 1024 * 1024;

/** What loading compiled, kept beside each {@link LoadedBundle} for the catalog and engine. */
export interface CompiledBundle {
  readonly cedar: CedarCompiled;
  readonly validators: ReadonlyMap<string, ParamsValidator>;
}

const compiled = new WeakMap<LoadedBundle, CompiledBundle>();

/**
 * The bundles this process loaded last, by hash and options. Loading is a function of the
 * document (which its hash names) and the options alone, so a bundle loaded again (at every
 * start, activation and follower reload, by each composition in one process) is the one loaded
 * before, not checked and compiled again. Only loads that succeeded are kept, a few at most.
 */
const recent = new Map<string, LoadedBundle>();
const RECENT_MAX = 4;

/** Every option is part of the key: a field added to the options fails to compile here until it is. */
const KEYED: { readonly [K in keyof Required<LoadBundleOptions>]: true } = { builtins: true };
void KEYED;

function recentKey(hash: string, options: LoadBundleOptions): string {
  const builtins = options.builtins === undefined ? null : [...new Set(options.builtins)].sort();
  return JSON.stringify([hash, builtins]);
}

/** Internal: the compiled parts of a bundle made by {@link loadBundle}; a `TypeError` for anything else. */
export function compiledOf(bundle: LoadedBundle): CompiledBundle {
  const c = compiled.get(bundle);
  if (c === undefined) throw new TypeError('not a bundle returned by loadBundle');
  return c;
}

function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const child of Object.values(v)) deepFreeze(child);
  }
  return v;
}

/** Lower-hex SHA-256 of the canonical bytes of a bundle document. (OE-INV-014 "policy bundle hash") */
export function hashBundle(document: JsonValue): string {
  return sha256Hex(canonicalBytes(document));
}

/**
 * Parses and verifies a bundle. With `expectedHash`, the document must hash to it (compared in
 * constant time). Denies with `ERR_POLICY_BUNDLE_INVALID` on malformed JSON, a hash mismatch,
 * an unknown or missing field, invalid Cedar, an invalid Cedar schema, policies that do not
 * validate against it, bad annotations, a tool whose parameter schema is invalid or not closed
 * to unknown properties, or an adapter spec that cannot run (`checkAdapterSpecs`: unknown type or
 * key, relative `argv[0]`, a placeholder naming no parameter, a limit out of range, with
 * `options.builtins` a builtin that does not exist; every problem named with its tool and path).
 * Never throws. (SPEC §6, §7 scenario 13, OE-INV-005)
 */
export function loadBundle(
  text: string | Uint8Array,
  expectedHash?: string,
  options: LoadBundleOptions = {},
): LoadedBundle | Deny {
  try {
    // Attacker-controlled bytes: strict JSON with a size limit before anything else.
    const value = deepFreeze(parseJson(text, { maxBytes: MAX_BUNDLE_BYTES }));
    const hash = hashBundle(value);
    if (expectedHash !== undefined && !hexDigestEquals(hash, expectedHash))
      return deny('ERR_POLICY_BUNDLE_INVALID', 'bundle hash does not match');
    const key = recentKey(hash, options);
    const loaded = recent.get(key);
    if (loaded !== undefined) {
      recent.delete(key);
      recent.set(key, loaded);
      return loaded;
    }
    const document = deepFreeze(parseBundleShape(value));
    const validators = new Map<string, ParamsValidator>();
    for (const tool of document.tools) {
      try {
        validators.set(tool.name, compileParamsSchema(tool.parameters));
      } catch (err) {
        return deny('ERR_POLICY_BUNDLE_INVALID', `tool ${tool.name}: ${(err as Error).message}`);
      }
    }
    const problems = checkAdapterSpecs(document.tools, options);
    if (problems.length > 0) return deny('ERR_POLICY_BUNDLE_INVALID', problems.slice(0, 20).join('; '));
    const cedar = compileCedar(document);
    const bundle: LoadedBundle = Object.freeze({ hash, document });
    compiled.set(bundle, { cedar, validators });
    recent.set(key, bundle);
    // The least recently loaded goes first (a hit moves its key to the end).
    if (recent.size > RECENT_MAX) recent.delete(recent.keys().next().value as string);
    return bundle;
  } catch (err) {
    const reason = err instanceof FailclosedError || err instanceof Error ? err.message : 'bundle rejected';
    return deny('ERR_POLICY_BUNDLE_INVALID', reason);
  }
}

/**
 * Parses a bundle document and checks its shape and hash only (no Cedar, schema or adapter
 * checks), so bundles can be compared (`policy diff`) even when one of them no longer loads.
 * Denies with `ERR_POLICY_BUNDLE_INVALID` on malformed JSON, a hash mismatch or a bad shape.
 * Never throws; never used to decide.
 */
export function parseBundleDocument(
  text: string | Uint8Array,
  expectedHash?: string,
): { readonly hash: string; readonly document: PolicyBundleDocument } | Deny {
  try {
    const value = deepFreeze(parseJson(text, { maxBytes: MAX_BUNDLE_BYTES }));
    const hash = hashBundle(value);
    if (expectedHash !== undefined && !hexDigestEquals(hash, expectedHash))
      return deny('ERR_POLICY_BUNDLE_INVALID', 'bundle hash does not match');
    return Object.freeze({ hash, document: deepFreeze(parseBundleShape(value)) });
  } catch (err) {
    return deny('ERR_POLICY_BUNDLE_INVALID', err instanceof Error ? err.message : 'bundle rejected');
  }
}
