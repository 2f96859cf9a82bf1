/**
 * From an upstream MCP server's tool listing to bundle source: one failclosed tool per upstream
 * tool (adapter `mcp`, its definition pinned by SHA-256) and one Cedar action per tool whose
 * `context.params` mirrors the tool's input schema. Used by `failclosed policy pin-mcp`; the
 * operator reviews what it writes, and `policy build` checks it like any other source.
 * docs/adapters.md "MCP tools". (SPEC §6 "Policy as code", OE-INV-005/013, OE-INV-023)
 */
import {
  PINNED_PROMPT_FIELDS,
  PINNED_RESOURCE_FIELDS,
  PINNED_TEMPLATE_FIELDS,
  pinMcpDefinition,
} from '../kernel/index.js';
import { compileOutputSchema } from './json-schema.js';
import type { ClientRequestKind, JsonObject, JsonValue } from '../kernel/index.js';
import { TOOL_NAME_RE } from './bundle-shape.js';
import {
  completionNamesOf,
  completionParameters,
  promptParameters,
  resourceParameters,
  templateParameters,
} from './adapter-spec.js';

/** What an upstream server may touch, as declared for every tool it serves. */
export interface McpServerDeclaration {
  /** Server name: `[a-z][a-z0-9_-]{0,31}`, the prefix of its tools' failclosed names (unless pinned with upstream names). */
  readonly name: string;
  /** argv; `[0]` an absolute path inside the sandbox (a stdio server). */
  readonly command?: readonly string[];
  /** The endpoint of a Streamable HTTP server (instead of `command`). */
  readonly url?: string;
  /** Headers sent to an HTTP server: literals or `{ secret, prefix? }` references. */
  readonly headers?: Readonly<Record<string, string | { readonly secret: string; readonly prefix?: string }>>;
  /** An https server's trust: pinned CA, client certificate and key by secret reference. */
  readonly tls?: object;
  /** OAuth client credentials for an HTTP server's bearer. */
  readonly oauth?: object;
  readonly fs_read: readonly string[];
  readonly fs_write: readonly string[];
  readonly network: boolean;
  /** `host:port` destinations, when `network` (reached only through the egress proxy). */
  readonly egress?: readonly string[];
  /** Address-space limit: a Node.js server needs about 1 GiB. */
  readonly memory_bytes: number;
  /** What its tools may ask of the caller's client while they run (`client_requests`); none by default. */
  readonly client_requests?: readonly ClientRequestKind[];
}

/** One pinned tool: its file name, its ToolSpec, and its Cedar action declaration. */
export interface PinnedTool {
  readonly name: string;
  readonly upstream: string;
  readonly sha256: string;
  readonly spec: JsonObject;
  readonly cedar: string;
}

/** A tool that could not be pinned, and why (the operator writes it by hand or leaves it out). */
export interface SkippedTool {
  readonly upstream: string;
  readonly reason: string;
}

export const SERVER_NAME_RE = /^[a-z][a-z0-9_-]{0,31}$/;

/**
 * How pinned tools and prompts are named in the bundle: `server` (the default) as
 * `<server>.<tool>` and `<server>.prompts.<prompt>`; `upstream` as the upstream server names them,
 * so a client that expects the server's own names finds them (docs/mcp.md "Naming"). Resources
 * are addressed by URI either way and keep `<server>.resources.<slug>`.
 */
export type McpNaming = 'server' | 'upstream';

/**
 * What an upstream-named entry may be called: a bundle tool name without dots. Dotted names are
 * the `<server>.` namespace of server-named entries, so an upstream-named entry can never be
 * taken for one of them, nor replaced when that server is pinned again.
 */
export const UPSTREAM_NAME_RE = /^[a-z][a-z0-9_-]{0,63}$/;

/** The entry name of an upstream tool or prompt under `naming`; throws when it cannot be one. */
function entryName(server: string, kind: 'tool' | 'prompt', upstream: string, naming: McpNaming): string {
  if (naming === 'upstream') {
    if (!UPSTREAM_NAME_RE.test(upstream))
      throw new Error(
        `"${upstream}" cannot keep its upstream name (it must match ${UPSTREAM_NAME_RE.source})`,
      );
    return upstream;
  }
  const name = kind === 'tool' ? `${server}.${upstream}` : `${server}.prompts.${upstream}`;
  if (!TOOL_NAME_RE.test(name)) throw new Error(`"${name}" is not a failclosed tool name`);
  return name;
}

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Whether `v` holds a `__proto__` member at any depth (an own member, as `JSON.parse` makes it). */
function holdsProto(v: JsonValue | undefined): boolean {
  if (Array.isArray(v)) return (v as readonly JsonValue[]).some(holdsProto);
  if (!isObject(v)) return false;
  return Object.keys(v).some((k) => k === '__proto__' || holdsProto(v[k]));
}

/**
 * Keywords whose meaning a Cedar record cannot carry: properties admitted by pattern or by what
 * another subschema evaluated, conditional subschemas, constraints on property names, schemas
 * by reference. A tool whose input schema uses one is skipped, never pinned with a Cedar type
 * that says something else than its schema.
 */
const UNTYPEABLE_KEYWORDS = [
  'patternProperties',
  'dependentSchemas',
  'dependencies',
  'if',
  'then',
  'else',
  'propertyNames',
  'unevaluatedProperties',
  'unevaluatedItems',
  '$ref',
  '$dynamicRef',
  '$recursiveRef',
] as const;

/** Keywords that annotate a schema and say nothing about what it admits. */
const ANNOTATIONS: ReadonlySet<string> = new Set([
  'title',
  'description',
  'default',
  'examples',
  '$comment',
  'deprecated',
  'readOnly',
  'writeOnly',
]);

/** How deep references may nest: a chain this long is a cycle or not worth typing. */
const MAX_REF_DEPTH = 16;

/** Schema nodes an inlined schema may hold: references that fan out would otherwise multiply. */
const MAX_INLINED_NODES = 10_000;

/**
 * The schema with every local reference (`{"$ref": "#/$defs/NAME"}` or `#/definitions/NAME`, into
 * the root's own definitions) replaced by a copy of what it names, so that the schema the
 * parameters are validated against and the Cedar type derived from it say the same thing.
 * The root's definitions stay (a client reads them in the listing), and nothing points at them
 * any more. Throws on any other reference (remote, JSON-pointer paths, `$id` anchors), on a
 * reference beside keywords other than annotations, on references nested past
 * {@link MAX_REF_DEPTH} (a recursive schema, which Cedar cannot type), and past
 * {@link MAX_INLINED_NODES} nodes (references that fan out).
 */
export function inlineLocalRefs(schema: JsonValue): JsonValue {
  if (!isObject(schema)) return schema;
  const defs: Record<string, JsonObject | undefined> = {
    $defs: isObject(schema['$defs']) ? schema['$defs'] : undefined,
    definitions: isObject(schema['definitions']) ? schema['definitions'] : undefined,
  };
  let nodes = 0;
  const walk = (node: JsonValue, depth: number): JsonValue => {
    if ((nodes += 1) > MAX_INLINED_NODES)
      throw new Error('the schema is too large once its $ref are inlined for failclosed to type in Cedar');
    if (Array.isArray(node)) return (node as readonly JsonValue[]).map((n) => walk(n, depth));
    if (!isObject(node)) return node;
    const ref = node['$ref'];
    if (ref !== undefined) {
      const m = typeof ref === 'string' ? /^#\/(\$defs|definitions)\/([^/~]+)$/.exec(ref) : null;
      const target = m === null ? undefined : defs[m[1]!]?.[m[2]!];
      if (m === null || !isObject(target))
        throw new Error(`the schema uses $ref ${JSON.stringify(ref)}, which failclosed cannot type in Cedar`);
      const others = Object.keys(node).filter((k) => k !== '$ref' && !ANNOTATIONS.has(k));
      if (others.length > 0)
        throw new Error(
          `the schema uses $ref beside ${others.join(', ')}, which failclosed cannot type in Cedar`,
        );
      if (depth >= MAX_REF_DEPTH)
        throw new Error('the schema uses $ref recursively, which failclosed cannot type in Cedar');
      const { $ref: _, ...notes } = node;
      return { ...(walk(target, depth + 1) as JsonObject), ...notes };
    }
    const out: Record<string, JsonValue> = {};
    for (const [k, v] of Object.entries(node)) {
      // Property names and definition names are not schemas; their values are.
      if (k === 'properties' || k === '$defs' || k === 'definitions')
        out[k] = isObject(v)
          ? Object.fromEntries(Object.entries(v).map(([n, sub]) => [n, walk(sub, depth)]))
          : v;
      else if (k === 'const' || k === 'enum' || k === 'default' || k === 'examples') out[k] = v;
      else out[k] = walk(v, depth);
    }
    return out;
  };
  return walk(schema, 0);
}

/**
 * The schema with `additionalProperties: false` on every object it describes (a tightening:
 * failclosed validates parameters against closed schemas only). Throws when an object admits a
 * schema for unknown properties (a map), which cannot be closed without changing its meaning,
 * and on any of {@link UNTYPEABLE_KEYWORDS}.
 */
export function closeSchema(schema: JsonValue): JsonValue {
  if (!isObject(schema)) return schema;
  const out: Record<string, JsonValue> = {};
  for (const [k, v] of Object.entries(schema)) {
    if ((UNTYPEABLE_KEYWORDS as readonly string[]).includes(k))
      throw new Error(`the schema uses ${k}, which failclosed cannot type in Cedar`);
    if (k === 'properties' || k === '$defs' || k === 'definitions') {
      out[k] = isObject(v) ? Object.fromEntries(Object.entries(v).map(([n, s]) => [n, closeSchema(s)])) : v;
    } else if (k === 'items' || k === 'not') {
      out[k] = Array.isArray(v) ? v.map(closeSchema) : closeSchema(v);
    } else if (k === 'anyOf' || k === 'oneOf' || k === 'allOf' || k === 'prefixItems') {
      out[k] = Array.isArray(v) ? v.map(closeSchema) : v;
    } else out[k] = v;
  }
  const describesObject = out['type'] === 'object' || 'properties' in out || 'required' in out;
  if (describesObject) {
    const extra = out['additionalProperties'];
    if (extra !== undefined && extra !== false)
      throw new Error('an object admits unknown properties by schema (a map)');
    out['additionalProperties'] = false;
  }
  return out;
}

/** The Cedar type of a JSON Schema, for the types failclosed converts; throws otherwise. */
export function cedarTypeOf(schema: JsonValue, depth = 0): string {
  if (!isObject(schema) || depth > 16) throw new Error('a schema failclosed cannot type in Cedar');
  const t = schema['type'];
  if (t === 'string') return 'String';
  if (t === 'integer') return 'Long';
  if (t === 'number') return 'decimal';
  if (t === 'boolean') return 'Bool';
  if (t === 'array') {
    const items = schema['items'];
    if (items === undefined || Array.isArray(items)) throw new Error('an array without one item schema');
    return `Set<${cedarTypeOf(items, depth + 1)}>`;
  }
  if (t === 'object') return cedarRecordOf(schema, depth);
  throw new Error(`a schema of type ${JSON.stringify(t ?? null)} failclosed cannot type in Cedar`);
}

function cedarRecordOf(schema: JsonObject, depth: number): string {
  const props = isObject(schema['properties']) ? schema['properties'] : {};
  const req = schema['required'];
  const required = new Set(Array.isArray(req) ? req.filter((r): r is string => typeof r === 'string') : []);
  const attrs = Object.entries(props).map(([name, s]) => {
    // JSON.stringify writes control characters as escapes (\b, \f, \u0001) that Cedar does not parse.
    if ([...name].some((c) => c.charCodeAt(0) < 0x20 || c === '\u007f'))
      throw new Error(
        `the property name ${JSON.stringify(name)} has control characters Cedar cannot declare`,
      );
    return `${JSON.stringify(name)}${required.has(name) ? '' : '?'}: ${cedarTypeOf(s, depth + 1)}`;
  });
  return `{ ${attrs.join(', ')} }`;
}

/** What every entry of `server` repeats: where it is (command or url and headers) and its grants. */
function declared(server: McpServerDeclaration): { limits: JsonObject; upstream: JsonObject } {
  // An HTTP server runs in no sandbox: it gets its destination and nothing else.
  const limits: JsonObject =
    server.url !== undefined
      ? { network: true, egress: [...(server.egress ?? [])] }
      : {
          memory_bytes: server.memory_bytes,
          network: server.network,
          ...(server.network ? { egress: [...(server.egress ?? [])] } : {}),
          fs_read: [...server.fs_read],
          fs_write: [...server.fs_write],
        };
  const upstream: JsonObject =
    server.url !== undefined
      ? {
          url: server.url,
          ...(server.headers === undefined || Object.keys(server.headers).length === 0
            ? {}
            : { headers: server.headers }),
          ...(server.tls === undefined ? {} : { tls: { ...server.tls } }),
          ...(server.oauth === undefined ? {} : { oauth: { ...server.oauth } }),
        }
      : { command: [...(server.command ?? [])] };
  return { limits, upstream };
}

function riskOf(annotations: JsonValue | undefined): 'low' | 'medium' | 'high' {
  // No hints: MCP's defaults (not read-only, destructive) are the worst case.
  if (!isObject(annotations)) return 'high';
  if (annotations['readOnlyHint'] === true) return 'low';
  if (annotations['destructiveHint'] === false) return 'medium';
  return 'high';
}

/**
 * Pins each listed tool of `server` (all of them, or only those named in `only`): its
 * failclosed name is `<server>.<upstream name>` (or, with `naming` `upstream`, the upstream
 * name itself), its parameters the closed input schema, its
 * risk from the server's annotations (read-only → low, non-destructive → medium, else or
 * without annotations high: a
 * hint to review, never trusted for more than a default), its output untrusted. The adapter
 * carries the server declaration, the upstream name, the pinned definition and its SHA-256.
 */
export function pinMcpTools(
  server: McpServerDeclaration,
  listed: readonly Readonly<Record<string, unknown>>[],
  only?: readonly string[],
  naming: McpNaming = 'server',
): { readonly pinned: readonly PinnedTool[]; readonly skipped: readonly SkippedTool[] } {
  if (!SERVER_NAME_RE.test(server.name)) throw new Error(`server name must match ${SERVER_NAME_RE.source}`);
  const pinned: PinnedTool[] = [];
  const skipped: SkippedTool[] = [];
  for (const tool of listed) {
    const upstream = typeof tool['name'] === 'string' ? tool['name'] : '';
    if (only !== undefined && !only.includes(upstream)) continue;
    try {
      const name = entryName(server.name, 'tool', upstream, naming);
      // Those names belong to the server's pinned prompts and resources.
      if (/^(prompts|resources)\./.test(upstream))
        throw new Error('a tool name beginning prompts. or resources. would shadow a prompt or resource');
      const { definition, sha256 } = pinMcpDefinition(tool);
      const input = definition['inputSchema'];
      // Copied into a plain object, such a member would set the copy's prototype: the schema the
      // parameters are checked against would silently differ from the one pinned.
      if (holdsProto(input) || holdsProto(definition['outputSchema']))
        throw new Error('the schema has a "__proto__" member, which failclosed refuses');
      const parameters = closeSchema(inlineLocalRefs(isObject(input) ? input : { type: 'object' }));
      if (!isObject(parameters) || parameters['type'] !== 'object')
        throw new Error('the input schema is not an object schema');
      const cedarParams = cedarRecordOf(parameters, 0);
      // Every result is validated against the pinned outputSchema: one that does not compile
      // would deny every call, so it is not pinned.
      if (definition['outputSchema'] !== undefined) compileOutputSchema(definition['outputSchema']);
      const description = definition['description'];
      const { limits, upstream: upstream_ } = declared(server);
      const spec: JsonObject = {
        name,
        description:
          typeof description === 'string' && description.length > 0
            ? description.slice(0, 2000)
            : `${upstream} (upstream MCP server ${server.name})`,
        risk: riskOf(definition['annotations']),
        untrusted_output: true,
        parameters,
        adapter: {
          type: 'mcp',
          server: server.name,
          ...upstream_,
          tool: upstream,
          definition,
          definition_sha256: sha256,
          ...(server.client_requests === undefined || server.client_requests.length === 0
            ? {}
            : { client_requests: [...server.client_requests] }),
          limits,
        },
      };
      const cedar = `action ${JSON.stringify(name)} appliesTo {\n  principal: Agent,\n  resource: Tenant,\n  context: { params: ${cedarParams}, risk: String, tainted: Bool },\n};\n`;
      pinned.push({ name, upstream, sha256, spec, cedar });
    } catch (err) {
      skipped.push({ upstream, reason: err instanceof Error ? err.message : 'cannot be pinned' });
    }
  }
  return { pinned, skipped };
}

/**
 * Pins the listed prompts of `server` named in `names` (none unless named): each becomes the
 * entry `<server>.prompts.<name>` (with `naming` `upstream`: `<name>`; adapter `mcp` with `prompt`), its parameters the prompt's
 * arguments (strings, required as listed, closed), its own Cedar action with those arguments in
 * `context.params`, risk low (a prompt runs nothing but the server's template), its output
 * untrusted (OE-INV-013). docs/mcp.md "Prompts and resources".
 */
export function pinMcpPrompts(
  server: McpServerDeclaration,
  listed: readonly Readonly<Record<string, unknown>>[],
  names: readonly string[],
  naming: McpNaming = 'server',
): { readonly pinned: readonly PinnedTool[]; readonly skipped: readonly SkippedTool[] } {
  const pinned: PinnedTool[] = [];
  const skipped: SkippedTool[] = [];
  for (const wanted of names) {
    const found = listed.filter((p) => p['name'] === wanted);
    if (found.length !== 1) {
      skipped.push({ upstream: wanted, reason: 'the server lists no such prompt (or more than one)' });
      continue;
    }
    try {
      const name = entryName(server.name, 'prompt', wanted, naming);
      const { definition, sha256 } = pinMcpDefinition(found[0] ?? {}, PINNED_PROMPT_FIELDS);
      const parameters = promptParameters(definition['arguments']);
      if (parameters === undefined) throw new Error('its arguments are malformed');
      const spec = entrySpec(
        server,
        name,
        `prompt ${wanted} (upstream MCP server ${server.name})`,
        parameters,
        { prompt: wanted },
        definition,
        sha256,
      );
      pinned.push({ name, upstream: wanted, sha256, spec, cedar: cedarAction(name, parameters) });
    } catch (err) {
      skipped.push({ upstream: wanted, reason: err instanceof Error ? err.message : 'cannot be pinned' });
    }
  }
  return { pinned, skipped };
}

/** A resource's entry name: its listed name, lowercased, anything outside `[a-z0-9_-]` as `_`. */
function resourceSlug(listedName: unknown, uri: string): string {
  const base = typeof listedName === 'string' && listedName.length > 0 ? listedName : uri;
  return base
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, '_')
    .slice(0, 40);
}

/**
 * Pins the listed resources of `server` whose URIs are in `uris` (none unless named): each
 * becomes the entry `<server>.resources.<slug of its name>` (adapter `mcp` with `resource`), its
 * parameters exactly `{uri}` fixed to its URI (so Cedar sees `context.params.uri` and the
 * envelope binds what is read), risk low, its output untrusted (OE-INV-013). Only resources the
 * server lists are pinned: templates are not.
 */
export function pinMcpResources(
  server: McpServerDeclaration,
  listed: readonly Readonly<Record<string, unknown>>[],
  uris: readonly string[],
): { readonly pinned: readonly PinnedTool[]; readonly skipped: readonly SkippedTool[] } {
  const pinned: PinnedTool[] = [];
  const skipped: SkippedTool[] = [];
  const names = new Set<string>();
  for (const uri of uris) {
    const found = listed.filter((r) => r['uri'] === uri);
    if (found.length !== 1) {
      skipped.push({ upstream: uri, reason: 'the server lists no such resource (or more than one)' });
      continue;
    }
    const first = found[0] ?? {};
    const base = `${server.name}.resources.${resourceSlug(first['name'], uri)}`;
    let name = base;
    for (let i = 2; names.has(name); i += 1) name = `${base}-${i}`;
    try {
      if (!TOOL_NAME_RE.test(name)) throw new Error(`"${name}" is not a failclosed tool name`);
      const { definition, sha256 } = pinMcpDefinition(first, PINNED_RESOURCE_FIELDS);
      const parameters = resourceParameters(uri);
      const spec = entrySpec(
        server,
        name,
        `resource ${uri} (upstream MCP server ${server.name})`,
        parameters,
        { resource: uri },
        definition,
        sha256,
      );
      names.add(name);
      pinned.push({ name, upstream: uri, sha256, spec, cedar: cedarAction(name, parameters) });
    } catch (err) {
      skipped.push({ upstream: uri, reason: err instanceof Error ? err.message : 'cannot be pinned' });
    }
  }
  return { pinned, skipped };
}

/**
 * Pins the listed resource templates of `server` whose URI templates are in `templates` (none
 * unless named): each becomes the entry `<server>.resources.<slug of its name>` (adapter `mcp`
 * with `resource_template`), its parameters exactly `{uri}` matching the template (so Cedar sees
 * `context.params.uri`, a policy can narrow it with `like`, and the envelope binds the URI read),
 * risk low, its output untrusted (OE-INV-013). Only `{name}` variables (RFC 6570 level 1) are
 * pinned: a value then cannot carry a delimiter into the URI.
 */
export function pinMcpResourceTemplates(
  server: McpServerDeclaration,
  listed: readonly Readonly<Record<string, unknown>>[],
  templates: readonly string[],
): { readonly pinned: readonly PinnedTool[]; readonly skipped: readonly SkippedTool[] } {
  const pinned: PinnedTool[] = [];
  const skipped: SkippedTool[] = [];
  const names = new Set<string>();
  for (const template of templates) {
    const found = listed.filter((r) => r['uriTemplate'] === template);
    if (found.length !== 1) {
      skipped.push({
        upstream: template,
        reason: 'the server lists no such resource template (or more than one)',
      });
      continue;
    }
    const first = found[0] ?? {};
    const base = `${server.name}.resources.${resourceSlug(first['name'], template)}`;
    let name = base;
    for (let i = 2; names.has(name); i += 1) name = `${base}-${i}`;
    try {
      if (!TOOL_NAME_RE.test(name)) throw new Error(`"${name}" is not a failclosed tool name`);
      const parameters = templateParameters(template);
      if (parameters === undefined)
        throw new Error(
          'only {name} variables (RFC 6570 level 1) can be pinned: what the template admits must be boundable',
        );
      const { definition, sha256 } = pinMcpDefinition(first, PINNED_TEMPLATE_FIELDS);
      const spec = entrySpec(
        server,
        name,
        `resources ${template} (upstream MCP server ${server.name})`,
        parameters,
        { resource_template: template },
        definition,
        sha256,
      );
      names.add(name);
      pinned.push({ name, upstream: template, sha256, spec, cedar: cedarAction(name, parameters) });
    } catch (err) {
      skipped.push({ upstream: template, reason: err instanceof Error ? err.message : 'cannot be pinned' });
    }
  }
  return { pinned, skipped };
}

/**
 * The completion entry of each pinned prompt and resource template in `entries` (docs/mcp.md
 * "Completion"): named `<its entry's name>.complete`, adapter `mcp` with the same `prompt` or
 * `resource_template`, definition and SHA-256 and `completion: true`, its parameters
 * `{argument, value, context?}` over the prompt's argument names or the template's variable
 * names, its own Cedar action with them in `context.params`, risk low, its output untrusted
 * (OE-INV-013). A prompt without arguments has nothing to complete: it gets none.
 */
export function pinMcpCompletions(
  server: McpServerDeclaration,
  entries: readonly PinnedTool[],
): { readonly pinned: readonly PinnedTool[]; readonly skipped: readonly SkippedTool[] } {
  const pinned: PinnedTool[] = [];
  const skipped: SkippedTool[] = [];
  for (const entry of entries) {
    const adapter = entry.spec['adapter'];
    if (!isObject(adapter) || adapter['completion'] !== undefined) continue;
    const prompt = adapter['prompt'];
    const template = adapter['resource_template'];
    const definition = adapter['definition'];
    if ((typeof prompt !== 'string' && typeof template !== 'string') || !isObject(definition)) continue;
    try {
      const name = `${entry.name}.complete`;
      if (!TOOL_NAME_RE.test(name)) throw new Error(`"${name}" is not a failclosed tool name`);
      const names = completionNamesOf(definition, typeof template === 'string' ? template : undefined);
      if (names === undefined) throw new Error('its arguments are malformed');
      const parameters = completionParameters(names);
      if (parameters === undefined) continue;
      const spec = entrySpec(
        server,
        name,
        `completion of ${entry.name} (upstream MCP server ${server.name})`,
        parameters,
        typeof prompt === 'string'
          ? { prompt, completion: true }
          : { resource_template: template ?? '', completion: true },
        definition,
        entry.sha256,
      );
      // Not the prompt's or template's description: the entry completes, it does not get or read.
      pinned.push({
        name,
        upstream: entry.upstream,
        sha256: entry.sha256,
        spec: {
          ...spec,
          description: `Completes the ${typeof prompt === 'string' ? 'arguments' : 'variables'} of ${entry.name}.`,
        },
        cedar: cedarAction(name, parameters),
      });
    } catch (err) {
      skipped.push({
        upstream: `${entry.upstream} (completion)`,
        reason: err instanceof Error ? err.message : 'cannot be pinned',
      });
    }
  }
  return { pinned, skipped };
}

/**
 * The bundle entry of a pinned upstream prompt, resource or resource template: risk low (a hint
 * to review), its output untrusted (OE-INV-013), the adapter naming what it reaches (`pinned`),
 * the pinned definition and its SHA-256, and the server's one declaration.
 */
function entrySpec(
  server: McpServerDeclaration,
  name: string,
  fallback: string,
  parameters: JsonObject,
  pinned: JsonObject,
  definition: JsonObject,
  sha256: string,
): JsonObject {
  const description = definition['description'];
  const { limits, upstream } = declared(server);
  return {
    name,
    description:
      typeof description === 'string' && description.length > 0 ? description.slice(0, 2000) : fallback,
    risk: 'low',
    untrusted_output: true,
    parameters,
    adapter: {
      type: 'mcp',
      server: server.name,
      ...upstream,
      ...pinned,
      definition,
      definition_sha256: sha256,
      limits,
    },
  };
}

function cedarAction(name: string, parameters: JsonObject): string {
  return `action ${JSON.stringify(name)} appliesTo {\n  principal: Agent,\n  resource: Tenant,\n  context: { params: ${cedarRecordOf(parameters, 0)}, risk: String, tainted: Bool },\n};\n`;
}
