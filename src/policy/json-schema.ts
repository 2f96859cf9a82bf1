/**
 * Tool parameter schemas: JSON Schema draft 2020-12 (default) or draft-07, compiled once per
 * bundle with ajv in strict mode, and required to be closed to unknown properties at every level.
 * Validation never changes the value: no coercion, no defaults, no removal (the parameters are
 * hashed as received). (OE-INV-004, SPEC §3 params_sha256)
 */
import { Ajv } from 'ajv';
import type { ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { OUTPUT_SCHEMA_AJV_OPTIONS, outputSchemaDraft } from '../kernel/index.js';
import type { JsonObject, JsonValue } from '../kernel/index.js';

const DRAFT_2020 = 'https://json-schema.org/draft/2020-12/schema';
const DRAFT_07 = 'http://json-schema.org/draft-07/schema#';

/** How every parameter schema is compiled: strict, and validation never changes the value. */
const AJV_OPTIONS = {
  strict: true,
  allErrors: false,
  coerceTypes: false,
  useDefaults: false,
  removeAdditional: false,
  validateFormats: true,
} as const;

const metaCheckers = new Map<'2020-12' | 'draft-07', Ajv>();

/** The instance that checks schemas of `draft` against its meta-schema (nothing is compiled in it). */
function metaChecker(draft: '2020-12' | 'draft-07'): Ajv {
  let a = metaCheckers.get(draft);
  if (a === undefined) {
    a = draft === 'draft-07' ? new Ajv(AJV_OPTIONS) : new Ajv2020(AJV_OPTIONS);
    metaCheckers.set(draft, a);
  }
  return a;
}

/** A compiled parameter validator; `explain` lists why parameters fail (for the dry run). */
export type ParamsValidator = ((params: JsonValue) => boolean) & {
  readonly explain: (params: JsonValue) => readonly string[];
};

/** Keywords whose value is a map of subschemas. */
const MAP_KEYWORDS = ['properties', 'patternProperties', '$defs', 'definitions', 'dependentSchemas'] as const;
/** Keywords whose value is one subschema. */
const ONE_KEYWORDS = [
  'additionalProperties',
  'unevaluatedProperties',
  'items',
  'additionalItems',
  'unevaluatedItems',
  'contains',
  'propertyNames',
  'not',
  'if',
  'then',
  'else',
] as const;
/** Keywords whose value is a list of subschemas. */
const LIST_KEYWORDS = ['allOf', 'anyOf', 'oneOf', 'prefixItems', 'items'] as const;

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describesObject(schema: JsonObject): boolean {
  const t = schema['type'];
  if (t === 'object') return true;
  if (Array.isArray(t) && t.includes('object')) return true;
  return 'properties' in schema || 'patternProperties' in schema || 'required' in schema;
}

/**
 * Returns a reason when some subschema that describes an object is not closed to unknown
 * properties (`additionalProperties: false` or `unevaluatedProperties: false`), else null.
 */
export function findOpenObject(schema: JsonValue, path = '#'): string | null {
  if (typeof schema === 'boolean') return null;
  if (!isObject(schema)) return `${path} is not a schema object`;
  if (describesObject(schema)) {
    if (schema['additionalProperties'] !== false && schema['unevaluatedProperties'] !== false)
      return `${path} must set additionalProperties: false`;
  }
  for (const k of MAP_KEYWORDS) {
    const m = schema[k];
    if (m === undefined) continue;
    if (!isObject(m)) return `${path}/${k} is not an object`;
    for (const [name, sub] of Object.entries(m)) {
      const r = findOpenObject(sub, `${path}/${k}/${name}`);
      if (r !== null) return r;
    }
  }
  for (const k of ONE_KEYWORDS) {
    const sub = schema[k];
    if (sub === undefined || Array.isArray(sub)) continue;
    const r = findOpenObject(sub, `${path}/${k}`);
    if (r !== null) return r;
  }
  for (const k of LIST_KEYWORDS) {
    const list = schema[k];
    if (!Array.isArray(list)) continue;
    for (const [i, sub] of (list as readonly JsonValue[]).entries()) {
      const r = findOpenObject(sub, `${path}/${k}/${i}`);
      if (r !== null) return r;
    }
  }
  return null;
}

/**
 * Compiles a tool's parameter schema. Throws (a plain `Error` with a reason) when the schema is
 * not a closed object schema, names an unsupported draft, or fails ajv's strict compilation;
 * the bundle loader turns that into `ERR_POLICY_BUNDLE_INVALID`.
 */
export function compileParamsSchema(schema: JsonObject): ParamsValidator {
  if (schema['type'] !== 'object') throw new Error('parameters must be a schema with type "object"');
  if (schema['additionalProperties'] !== false)
    throw new Error('parameters must set additionalProperties: false at the top level');
  const open = findOpenObject(schema);
  if (open !== null) throw new Error(open);
  const draft = schema['$schema'];
  if (draft !== undefined && draft !== DRAFT_2020 && draft !== DRAFT_07)
    throw new Error('unsupported $schema: use draft 2020-12 or draft-07');
  // Checked against its draft's meta-schema by one instance per draft, as ajv's own compile would
  // (same check, same message): a fresh instance checking it compiled the meta-schema again for
  // every tool, about nine tenths of a bundle's load.
  const meta = metaChecker(draft === DRAFT_07 ? 'draft-07' : '2020-12');
  if (!meta.validateSchema(schema)) throw new Error(`schema is invalid: ${meta.errorsText(meta.errors)}`);
  // Compiled in a fresh instance per tool: no `$id` of one tool can collide with or be referenced
  // by another.
  const options = { ...AJV_OPTIONS, validateSchema: false } as const;
  const validate: ValidateFunction =
    draft === DRAFT_07 ? new Ajv(options).compile(schema) : new Ajv2020(options).compile(schema);
  const check = (params: JsonValue): boolean => validate(params) === true;
  const explain = (params: JsonValue): readonly string[] => {
    // A second instance reporting every error, compiled only when a dry run asks.
    const all = (
      draft === DRAFT_07
        ? new Ajv({ ...options, allErrors: true })
        : new Ajv2020({ ...options, allErrors: true })
    ).compile(schema);
    if (all(params) === true) return [];
    return (all.errors ?? []).map(
      (e) =>
        `${e.instancePath === '' ? '/' : e.instancePath}: ${e.message ?? 'is invalid'}${e.keyword === 'additionalProperties' ? ` (${String((e.params as { additionalProperty?: unknown }).additionalProperty)})` : ''}`,
    );
  };
  return Object.assign(check, { explain });
}

/**
 * A validator for a pinned `outputSchema`, compiled as {@link OUTPUT_SCHEMA_AJV_OPTIONS} says.
 * Throws when it does not compile.
 */
export function compileOutputSchema(schema: unknown): ValidateFunction {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema))
    throw new Error('outputSchema is not a schema object');
  const s = schema as JsonObject;
  return outputSchemaDraft(s) === 'draft-07'
    ? new Ajv(OUTPUT_SCHEMA_AJV_OPTIONS).compile(s)
    : new Ajv2020(OUTPUT_SCHEMA_AJV_OPTIONS).compile(s);
}
