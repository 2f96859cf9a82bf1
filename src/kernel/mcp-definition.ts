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

/**
 * The fields of an MCP resource template that are pinned: its URI template and what a reader is
 * told about it. Not pinned: `annotations`, `_meta`, `icons`.
 */
export const PINNED_TEMPLATE_FIELDS = ['uriTemplate', 'name', 'title', 'description', 'mimeType'] as const;

/**
 * What an `mcp` adapter entry of the bundle reaches upstream: a tool, a prompt, a resource, the
 * resources of a resource template (`resource_template` in the spec, kind `template`), or the
 * completion of a prompt's arguments or a template's variables (`completion: true` beside
 * `prompt` or `resource_template`, kind `completion`).
 */
export type McpEntryKind = 'tool' | 'prompt' | 'resource' | 'template' | 'completion';

/** What a definition is pinned as: a completion entry pins the prompt or template it completes. */
export type McpPinnedKind = Exclude<McpEntryKind, 'completion'>;

/** The pinned fields of each kind of definition. */
export const PINNED_FIELDS_OF: Readonly<Record<McpPinnedKind, readonly string[]>> = Object.freeze({
  tool: PINNED_DEFINITION_FIELDS,
  prompt: PINNED_PROMPT_FIELDS,
  resource: PINNED_RESOURCE_FIELDS,
  template: PINNED_TEMPLATE_FIELDS,
});

/** What `spec` names upstream, by which one of `tool`, `prompt`, `resource` or `resource_template` it has. */
function namedKindOf(spec: Readonly<Record<string, unknown>>): McpPinnedKind | undefined {
  const named = (['tool', 'prompt', 'resource', 'resource_template'] as const).filter(
    (k) => spec[k] !== undefined,
  );
  if (named.length !== 1) return undefined;
  return named[0] === 'resource_template' ? 'template' : named[0];
}

/**
 * The kind of an `mcp` adapter spec: by which of `tool`, `prompt`, `resource` or
 * `resource_template` it names (undefined when not exactly one); `completion` when it also says
 * `completion: true` and names a prompt or a resource template (undefined for any other
 * `completion`).
 */
export function mcpEntryKindOf(spec: Readonly<Record<string, unknown>>): McpEntryKind | undefined {
  const kind = namedKindOf(spec);
  if (spec['completion'] === undefined) return kind;
  return spec['completion'] === true && (kind === 'prompt' || kind === 'template') ? 'completion' : undefined;
}

/**
 * The kind of the definition an `mcp` adapter spec pins: its own kind, or for a completion entry
 * the prompt or template it completes (undefined when the spec has no kind).
 */
export function mcpPinnedKindOf(spec: Readonly<Record<string, unknown>>): McpPinnedKind | undefined {
  return mcpEntryKindOf(spec) === undefined ? undefined : namedKindOf(spec);
}

/** Most values a completion answers (MCP's own bound), and longest value or argument sent. */
export const MAX_COMPLETION_VALUES = 100;
export const MAX_COMPLETION_VALUE_LENGTH = 1024;

/** The variable names of a URI template failclosed pins (kernel {@link uriTemplatePattern}); undefined otherwise. */
export function uriTemplateVariables(template: string): readonly string[] | undefined {
  if (uriTemplatePattern(template) === undefined) return undefined;
  return [...new Set([...template.matchAll(/\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1] ?? ''))];
}

/**
 * What an upstream tool may ask of the caller's MCP client while it runs, when its bundle entry
 * lists it in `client_requests` (docs/mcp.md "Sampling and elicitation"): a completion from the
 * client's model (`sampling`), an answer from its user (`elicitation`, form mode).
 */
export const CLIENT_REQUEST_KINDS = Object.freeze(['sampling', 'elicitation'] as const);

/** One kind of request an upstream may make of the caller's client. */
export type ClientRequestKind = (typeof CLIENT_REQUEST_KINDS)[number];

/** Longest URI template pinned, and longest URI read through one. */
const MAX_TEMPLATE_LENGTH = 2048;

/** Longest URI read through a template: longer ones are refused before any match. */
export const MAX_TEMPLATE_URI_LENGTH = 2048;

/** A character a template variable's value may hold: RFC 3986 unreserved. */
const VALUE_CHAR = /[A-Za-z0-9._~-]/;

/**
 * The anchored regular expression (its source) of the URIs an RFC 6570 level-1 URI template
 * expands to: literal characters as they are, each `{name}` (simple string expansion) one or more
 * unreserved characters (`A–Z a–z 0–9 . _ ~ -`), so a value can never carry a `/`, `?`, `#`, a
 * percent-encoding (an upstream may decode `%2F` or `%73` into what a policy did not see) or any
 * other delimiter into the URI, nor be the dot segment `.` or `..`.
 *
 * Undefined for anything else, which failclosed does not pin: operators such as `{+path}`,
 * `{/x}`, `{?q}`, lists, prefixes, explode, an unbalanced brace, a template without variables,
 * and a variable followed by another or by a literal that starts with a value character
 * (`{name}.{ext}`): where a value ends would be ambiguous, and matching such patterns can take
 * time exponential in the URI's length. With every variable ended by a character no value holds,
 * a match is linear.
 */
export function uriTemplatePattern(template: string): string | undefined {
  if (template.length === 0 || template.length > MAX_TEMPLATE_LENGTH) return undefined;
  let out = '^';
  let vars = 0;
  let afterVar = false;
  for (const part of template.split(/(\{[^{}]*\})/)) {
    if (part.length === 0) continue;
    if (part.startsWith('{')) {
      if (!/^\{[A-Za-z0-9_]+\}$/.test(part) || afterVar) return undefined;
      // Not `.` or `..` as a whole value: a dot segment an upstream may resolve against the path.
      out += '(?!\\.\\.?(?![A-Za-z0-9._~-]))[A-Za-z0-9._~-]+';
      vars += 1;
      afterVar = true;
    } else {
      // Braces outside a variable, spaces and control characters: not a template failclosed reads.
      if (/[{}]/.test(part) || [...part].some((c) => c.charCodeAt(0) <= 0x20 || c === '\u007f'))
        return undefined;
      if (afterVar && VALUE_CHAR.test(part[0] ?? '')) return undefined;
      out += part.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      afterVar = false;
    }
  }
  return vars === 0 ? undefined : `${out}$`;
}

/** The literal start of a URI template, up to its first variable. */
export function uriTemplatePrefix(template: string): string {
  const at = template.indexOf('{');
  return at < 0 ? template : template.slice(0, at);
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
