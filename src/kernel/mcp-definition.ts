/**
 * The pinned form of an upstream MCP tool definition, shared by the policy bundle (which stores
 * the hash) and the Execution Layer (which compares the upstream's current definition with it
 * before every call). docs/adapters.md "MCP tools". (OE-INV-005, OE-INV-023)
 */
import { Ajv } from 'ajv';
import type { ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
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

const DRAFT_07 = 'http://json-schema.org/draft-07/schema#';

/**
 * A validator for a pinned `outputSchema`, used by the bundle check and by the adapter after each
 * call (draft 2020-12, MCP's default, or draft-07 when it says
 * so). Unknown keywords and formats do not compile: a schema failclosed cannot check entirely is
 * not checked in part. Throws when it does not compile.
 */
export function compileOutputSchema(schema: unknown): ValidateFunction {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema))
    throw new Error('outputSchema is not a schema object');
  const options = {
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
  } as const;
  return (schema as Record<string, unknown>)['$schema'] === DRAFT_07
    ? new Ajv(options).compile(schema as Record<string, unknown>)
    : new Ajv2020(options).compile(schema as Record<string, unknown>);
}
