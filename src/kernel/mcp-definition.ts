/**
 * The pinned form of an upstream MCP tool definition, shared by the policy bundle (which stores
 * the hash) and the Execution Layer (which compares the upstream's current definition with it
 * before every call). docs/adapters.md "MCP tools". (OE-INV-005, OE-INV-023)
 */
import { canonicalize } from './canonical.js';
import { sha256Hex } from './hash.js';
import type { JsonObject, JsonValue } from './json.js';

/**
 * The fields of an MCP tool definition that are pinned: what the model reads (`title`,
 * `description`), what it may send (`inputSchema`), what it gets back (`outputSchema`) and the
 * server's hints (`annotations`). Anything else a server lists (`_meta`, `icons`, `execution`)
 * is not pinned. The listing is hashed as the SDK client parsed it: of `annotations` only the
 * hints MCP defines survive (`title`, `readOnlyHint`, `destructiveHint`, `idempotentHint`,
 * `openWorldHint`); other keys there are neither pinned nor compared.
 */
export const PINNED_DEFINITION_FIELDS = [
  'name',
  'title',
  'description',
  'inputSchema',
  'outputSchema',
  'annotations',
] as const;

/**
 * The pinned part of a tool definition as listed by its server (the present fields of
 * {@link PINNED_DEFINITION_FIELDS}) and the lower-hex SHA-256 of its RFC 8785 canonical JSON.
 * Throws when the definition is not strict JSON (unsafe numbers, lone surrogates): callers deny.
 */
export function pinMcpDefinition(listed: Readonly<Record<string, unknown>>): {
  readonly definition: JsonObject;
  readonly sha256: string;
} {
  const definition: Record<string, JsonValue> = {};
  for (const k of PINNED_DEFINITION_FIELDS) {
    const v = listed[k];
    if (v !== undefined) definition[k] = v as JsonValue;
  }
  const text = canonicalize(definition);
  return { definition: JSON.parse(text) as JsonObject, sha256: sha256Hex(text) };
}

/**
 * How a pinned `outputSchema` is compiled, by the bundle check (policy) and by the adapter after
 * each call (execution) alike: ajv options and draft. Unknown keywords and formats do not
 * compile: a schema failclosed cannot check entirely is not checked in part.
 */
export const OUTPUT_SCHEMA_AJV_OPTIONS = Object.freeze({
  strictSchema: true,
  strictTypes: false,
  strictTuples: false,
  strictRequired: false,
  allErrors: false,
  coerceTypes: false,
  useDefaults: false,
  removeAdditional: false,
  validateFormats: true,
  logger: false,
} as const);

/** The draft of an `outputSchema`: draft-07 when it says so, else 2020-12 (MCP's default). */
export function outputSchemaDraft(schema: JsonObject): 'draft-07' | '2020-12' {
  return schema['$schema'] === 'http://json-schema.org/draft-07/schema#' ? 'draft-07' : '2020-12';
}
