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
 * The fields of an MCP prompt that are pinned: what the model and the user read (`title`,
 * `description`) and what may be sent (`arguments`: name, title, description, required).
 * `_meta` and `icons` are not pinned.
 */
export const PINNED_PROMPT_FIELDS = ['name', 'title', 'description', 'arguments'] as const;

/**
 * The fields of an MCP resource that are pinned: its address (`uri`) and what a reader is told
 * about it (`name`, `title`, `description`, `mimeType`). Not pinned: `size` and `annotations`
 * (`lastModified` and the like change with the content, which is read, never pinned), `_meta`,
 * `icons`.
 */
export const PINNED_RESOURCE_FIELDS = ['uri', 'name', 'title', 'description', 'mimeType'] as const;

/** What an `mcp` adapter entry of the bundle reaches upstream: a tool, a prompt or a resource. */
export type McpEntryKind = 'tool' | 'prompt' | 'resource';

/** The pinned fields of each kind of entry. */
export const PINNED_FIELDS_OF: Readonly<Record<McpEntryKind, readonly string[]>> = Object.freeze({
  tool: PINNED_DEFINITION_FIELDS,
  prompt: PINNED_PROMPT_FIELDS,
  resource: PINNED_RESOURCE_FIELDS,
});

/**
 * The kind of an `mcp` adapter spec: by which of `tool`, `prompt` or `resource` it names
 * (undefined when not exactly one).
 */
export function mcpEntryKindOf(spec: Readonly<Record<string, unknown>>): McpEntryKind | undefined {
  const named = (['tool', 'prompt', 'resource'] as const).filter((k) => spec[k] !== undefined);
  return named.length === 1 ? named[0] : undefined;
}

/**
 * The pinned part of a tool definition as listed by its server (the present fields of
 * {@link PINNED_DEFINITION_FIELDS}, or of `fields` for a prompt or a resource) and the lower-hex SHA-256 of its RFC 8785 canonical JSON.
 * Throws when the definition is not strict JSON (unsafe numbers, lone surrogates): callers deny.
 */
export function pinMcpDefinition(
  listed: Readonly<Record<string, unknown>>,
  fields: readonly string[] = PINNED_DEFINITION_FIELDS,
): {
  readonly definition: JsonObject;
  readonly sha256: string;
} {
  const definition: Record<string, JsonValue> = {};
  for (const k of fields) {
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
