/**
 * An upstream MCP server's pinned prompts and resources, reached like its pinned tools
 * (docs/mcp.md "Prompts and resources"): per governed call, over the same carrier (the sandboxed
 * stdio process or the Streamable HTTP connection) and the same session code, the server's
 * current definition of the prompt or resource is compared with the pinned SHA-256 **before**
 * it is got or read (`ERR_TOOL_DEFINITION_CHANGED` when it differs or is gone: nothing is got or
 * read), and the prompt is got with the envelope's exact arguments, the resource read at the
 * URI the envelope binds. Everything it answers is untrusted (OE-INV-013): bounded by the
 * carrier, redacted by the executor, and it taints the session. (OE-INV-005/023, SPEC §6)
 */
import type { Client } from '@modelcontextprotocol/client';
import {
  PINNED_PROMPT_FIELDS,
  PINNED_RESOURCE_FIELDS,
  PINNED_TEMPLATE_FIELDS,
  MAX_TEMPLATE_URI_LENGTH,
  MAX_COMPLETION_VALUES,
  MAX_COMPLETION_VALUE_LENGTH,
  uriTemplatePattern,
  uriTemplateVariables,
  deny,
  hexDigestEquals,
  mcpEntryKindOf,
  pinMcpDefinition,
} from '../../kernel/index.js';
import type { Deny, JsonValue } from '../../kernel/index.js';
import { callPinnedTool, isObject, parsePinnedTool, withUpstream } from './mcp-session.js';
import type { CallChannels, PinnedMcpTool, Step, Upstream } from './mcp-session.js';
import type { ToolOutput } from './types.js';

/** Pages of a prompt or resource listing read to find a pinned entry (each within the carrier's byte cap). */
export const MAX_LIST_PAGES = 16;

/** What an `mcp` spec reaches upstream, pinned. */
export type PinnedMcpEntry =
  | ({ readonly kind: 'tool' } & PinnedMcpTool)
  | { readonly kind: 'prompt'; readonly prompt: string; readonly sha256: string }
  | { readonly kind: 'resource'; readonly uri: string; readonly sha256: string }
  | {
      readonly kind: 'template';
      readonly template: string;
      readonly pattern: RegExp;
      readonly sha256: string;
    }
  | {
      readonly kind: 'completion';
      /** What it completes: the arguments of a prompt, or the variables of a resource template. */
      readonly of: 'prompt' | 'template';
      /** The prompt's name, or the URI template. */
      readonly target: string;
      /** The argument or variable names that may be completed (and given as context). */
      readonly names: ReadonlySet<string>;
      readonly sha256: string;
    };

/**
 * The pinned entry of an `mcp` spec (a tool, a prompt or a resource), or undefined when it is
 * malformed or its definition does not hash to the pin (the caller denies `ERR_ADAPTER_UNAVAILABLE`).
 */
export function parsePinnedEntry(spec: Readonly<Record<string, unknown>>): PinnedMcpEntry | undefined {
  const kind = mcpEntryKindOf(spec);
  if (kind === 'tool') {
    const tool = parsePinnedTool(spec);
    return tool === undefined ? undefined : { kind, ...tool };
  }
  if (kind === undefined) return undefined;
  if (kind === 'completion') return parseCompletion(spec);
  const { definition, definition_sha256: sha256 } = spec;
  const named =
    kind === 'prompt' ? spec['prompt'] : kind === 'resource' ? spec['resource'] : spec['resource_template'];
  if (
    typeof named !== 'string' ||
    named.length === 0 ||
    typeof sha256 !== 'string' ||
    !/^[0-9a-f]{64}$/.test(sha256) ||
    !isObject(definition)
  )
    return undefined;
  try {
    const fields =
      kind === 'prompt'
        ? PINNED_PROMPT_FIELDS
        : kind === 'resource'
          ? PINNED_RESOURCE_FIELDS
          : PINNED_TEMPLATE_FIELDS;
    if (!hexDigestEquals(pinMcpDefinition(definition, fields).sha256, sha256)) return undefined;
  } catch {
    return undefined;
  }
  if (kind === 'prompt') return definition['name'] === named ? { kind, prompt: named, sha256 } : undefined;
  if (kind === 'resource') return definition['uri'] === named ? { kind, uri: named, sha256 } : undefined;
  const pattern = uriTemplatePattern(named);
  return definition['uriTemplate'] === named && pattern !== undefined
    ? { kind, template: named, pattern: new RegExp(pattern), sha256 }
    : undefined;
}

/** A completion entry: the pinned prompt or template it completes, checked as {@link parsePinnedEntry} checks those. */
function parseCompletion(spec: Readonly<Record<string, unknown>>): PinnedMcpEntry | undefined {
  const of = spec['prompt'] !== undefined ? 'prompt' : 'template';
  const pinned = parsePinnedEntry({ ...spec, completion: undefined });
  if (pinned === undefined || pinned.kind !== of) return undefined;
  const definition = spec['definition'] as Readonly<Record<string, unknown>>;
  let names: readonly string[] | undefined;
  if (pinned.kind === 'template') names = uriTemplateVariables(pinned.template);
  else {
    const args = definition['arguments'] ?? [];
    names = Array.isArray(args)
      ? args.map((a: unknown) => (isObject(a) && typeof a['name'] === 'string' ? a['name'] : ''))
      : undefined;
  }
  if (names === undefined || names.length === 0 || names.includes('')) return undefined;
  return {
    kind: 'completion',
    of,
    target: pinned.kind === 'template' ? pinned.template : pinned.kind === 'prompt' ? pinned.prompt : '',
    names: new Set(names),
    sha256: pinned.sha256,
  };
}

/** Every item of a paginated listing, at most {@link MAX_LIST_PAGES} pages (a longer one is an error). */
async function listAll(
  step: Step,
  page: (
    cursor: string | undefined,
  ) => Promise<{ items: readonly unknown[]; nextCursor?: string | undefined }>,
): Promise<readonly Readonly<Record<string, unknown>>[] | Deny> {
  const all: Readonly<Record<string, unknown>>[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < MAX_LIST_PAGES; i += 1) {
    const got = await step(() => page(cursor));
    if ('outcome' in got) return got;
    for (const item of got.value.items) if (isObject(item)) all.push(item);
    cursor = got.value.nextCursor;
    if (cursor === undefined) return all;
  }
  return deny('ERR_TOOL_FAILED', `the upstream's listing is longer than ${MAX_LIST_PAGES} pages`);
}

const promptPages = (client: Client, timeout: number) => async (cursor: string | undefined) => {
  const r = await client.listPrompts(cursor === undefined ? undefined : { cursor }, { timeout });
  return { items: r.prompts, nextCursor: r.nextCursor };
};

const resourcePages = (client: Client, timeout: number) => async (cursor: string | undefined) => {
  const r = await client.listResources(cursor === undefined ? undefined : { cursor }, { timeout });
  return { items: r.resources, nextCursor: r.nextCursor };
};

const templatePages = (client: Client, timeout: number) => async (cursor: string | undefined) => {
  const r = await client.listResourceTemplates(cursor === undefined ? undefined : { cursor }, { timeout });
  return { items: r.resourceTemplates, nextCursor: r.nextCursor };
};

/** The one listed item matching `match`, compared with the pin before anything else is asked. */
function checkPin(
  listed: readonly Readonly<Record<string, unknown>>[],
  match: (item: Readonly<Record<string, unknown>>) => boolean,
  fields: readonly string[],
  sha256: string,
  what: string,
): Deny | undefined {
  const current = listed.filter(match);
  if (current.length !== 1)
    return deny('ERR_TOOL_DEFINITION_CHANGED', `the upstream no longer offers ${what}`);
  let listedSha: string;
  try {
    listedSha = pinMcpDefinition(current[0] ?? {}, fields).sha256;
  } catch {
    return deny('ERR_TOOL_DEFINITION_CHANGED', 'the upstream definition is not strict JSON');
  }
  return hexDigestEquals(listedSha, sha256)
    ? undefined
    : deny('ERR_TOOL_DEFINITION_CHANGED', `the upstream changed the definition of ${what}`);
}

/**
 * Gets the pinned prompt with `params` as its arguments (each a string): lists the prompts,
 * compares the listed definition with the pin (nothing is got when it differs or is gone), gets
 * it. Result: `{ description?, messages }` of the upstream's `GetPromptResult`.
 */
export async function getPinnedPrompt(
  upstream: Upstream,
  pinned: { readonly prompt: string; readonly sha256: string },
  params: Readonly<Record<string, unknown>>,
  timeout: number,
): Promise<ToolOutput> {
  const args: Record<string, string> = {};
  for (const [k, v] of Object.entries(params)) {
    if (typeof v !== 'string') return deny('ERR_PARAMS_INVALID', 'prompt arguments must be strings');
    args[k] = v;
  }
  return withUpstream(upstream, timeout, async (client, step) => {
    const listed = await listAll(step, promptPages(client, timeout));
    if ('outcome' in listed) return listed;
    const changed = checkPin(
      listed,
      (p) => p['name'] === pinned.prompt,
      PINNED_PROMPT_FIELDS,
      pinned.sha256,
      `the prompt ${pinned.prompt}`,
    );
    if (changed !== undefined) return changed;
    const got = await step(() => client.getPrompt({ name: pinned.prompt, arguments: args }, { timeout }));
    if ('outcome' in got) return got;
    const r = got.value as { description?: unknown; messages?: unknown };
    const result: Record<string, JsonValue> = { messages: (r.messages ?? []) as JsonValue };
    if (typeof r.description === 'string') result['description'] = r.description;
    return { outcome: 'ok' as const, result };
  });
}

/**
 * Reads the pinned resource: `params` must be exactly `{uri}` of the pin; lists the resources,
 * compares the listed metadata with the pin (nothing is read when it differs or is gone), reads
 * it. Result: `{ contents }` of the upstream's `ReadResourceResult`.
 */
export async function readPinnedResource(
  upstream: Upstream,
  pinned: { readonly uri: string; readonly sha256: string },
  params: Readonly<Record<string, unknown>>,
  timeout: number,
): Promise<ToolOutput> {
  if (Object.keys(params).length !== 1 || params['uri'] !== pinned.uri)
    return deny('ERR_PARAMS_INVALID', 'a resource is read at its pinned URI only');
  return withUpstream(upstream, timeout, async (client, step) => {
    const listed = await listAll(step, resourcePages(client, timeout));
    if ('outcome' in listed) return listed;
    const changed = checkPin(
      listed,
      (r) => r['uri'] === pinned.uri,
      PINNED_RESOURCE_FIELDS,
      pinned.sha256,
      'the resource',
    );
    if (changed !== undefined) return changed;
    const read = await step(() => client.readResource({ uri: pinned.uri }, { timeout }));
    if ('outcome' in read) return read;
    const r = read.value as { contents?: unknown };
    return { outcome: 'ok' as const, result: { contents: (r.contents ?? []) as JsonValue } };
  });
}

/**
 * Reads a resource of the pinned template: `params` must be exactly `{uri}`, a URI the template
 * expands to (checked again here, whatever the Gate and the bundle said); lists the templates,
 * compares the listed one with the pin (nothing is read when it differs or is gone), reads the
 * URI. Result: `{ contents }` of the upstream's `ReadResourceResult`.
 */
export async function readTemplateResource(
  upstream: Upstream,
  pinned: { readonly template: string; readonly pattern: RegExp; readonly sha256: string },
  params: Readonly<Record<string, unknown>>,
  timeout: number,
): Promise<ToolOutput> {
  const uri = params['uri'];
  if (
    Object.keys(params).length !== 1 ||
    typeof uri !== 'string' ||
    uri.length > MAX_TEMPLATE_URI_LENGTH ||
    !pinned.pattern.test(uri)
  )
    return deny(
      'ERR_PARAMS_INVALID',
      'a resource of a template is read at a URI the template expands to only',
    );
  return withUpstream(upstream, timeout, async (client, step) => {
    const listed = await listAll(step, templatePages(client, timeout));
    if ('outcome' in listed) return listed;
    const changed = checkPin(
      listed,
      (t) => t['uriTemplate'] === pinned.template,
      PINNED_TEMPLATE_FIELDS,
      pinned.sha256,
      'the resource template',
    );
    if (changed !== undefined) return changed;
    const read = await step(() => client.readResource({ uri }, { timeout }));
    if ('outcome' in read) return read;
    const r = read.value as { contents?: unknown };
    return { outcome: 'ok' as const, result: { contents: (r.contents ?? []) as JsonValue } };
  });
}

/** The `{argument, value, context?}` of a completion, each within the pin; undefined otherwise. */
function completionRequest(
  names: ReadonlySet<string>,
  params: Readonly<Record<string, unknown>>,
):
  { argument: { name: string; value: string }; context?: { arguments: Record<string, string> } } | undefined {
  const { argument, value, context } = params;
  if (Object.keys(params).some((k) => k !== 'argument' && k !== 'value' && k !== 'context')) return undefined;
  const short = (v: unknown): v is string => typeof v === 'string' && v.length <= MAX_COMPLETION_VALUE_LENGTH;
  if (typeof argument !== 'string' || !names.has(argument) || !short(value)) return undefined;
  if (context === undefined) return { argument: { name: argument, value } };
  if (!isObject(context)) return undefined;
  const given: Record<string, string> = {};
  for (const [k, v] of Object.entries(context)) {
    if (!names.has(k) || !short(v)) return undefined;
    given[k] = v;
  }
  return { argument: { name: argument, value }, context: { arguments: given } };
}

/**
 * Completes an argument of the pinned prompt or a variable of the pinned template: `params` must
 * be `{argument, value, context?}` over the pinned names (checked again here, whatever the Gate
 * and the bundle said); lists the prompts or templates, compares the listed definition with the
 * pin (nothing is asked when it differs or is gone), asks for the completion. Result:
 * `{ completion: { values, total?, hasMore? } }`, at most {@link MAX_COMPLETION_VALUES} strings;
 * anything else the upstream answers is `ERR_TOOL_FAILED`.
 */
export async function completePinnedEntry(
  upstream: Upstream,
  pinned: Extract<PinnedMcpEntry, { kind: 'completion' }>,
  params: Readonly<Record<string, unknown>>,
  timeout: number,
): Promise<ToolOutput> {
  const request = completionRequest(pinned.names, params);
  if (request === undefined)
    return deny(
      'ERR_PARAMS_INVALID',
      'a completion names a pinned argument, its value and others given, as strings',
    );
  return withUpstream(upstream, timeout, async (client, step) => {
    const prompt = pinned.of === 'prompt';
    const listed = await listAll(
      step,
      prompt ? promptPages(client, timeout) : templatePages(client, timeout),
    );
    if ('outcome' in listed) return listed;
    const changed = checkPin(
      listed,
      prompt ? (p) => p['name'] === pinned.target : (t) => t['uriTemplate'] === pinned.target,
      prompt ? PINNED_PROMPT_FIELDS : PINNED_TEMPLATE_FIELDS,
      pinned.sha256,
      prompt ? `the prompt ${pinned.target}` : 'the resource template',
    );
    if (changed !== undefined) return changed;
    const ref = prompt
      ? { type: 'ref/prompt' as const, name: pinned.target }
      : { type: 'ref/resource' as const, uri: pinned.target };
    const got = await step(() => client.complete({ ref, ...request }, { timeout }));
    if ('outcome' in got) return got;
    const c = (got.value as { completion?: unknown }).completion;
    const values = isObject(c) ? c['values'] : undefined;
    if (
      !isObject(c) ||
      !Array.isArray(values) ||
      values.length > MAX_COMPLETION_VALUES ||
      !values.every((v) => typeof v === 'string') ||
      (c['total'] !== undefined &&
        (typeof c['total'] !== 'number' || !Number.isSafeInteger(c['total']) || c['total'] < 0)) ||
      (c['hasMore'] !== undefined && typeof c['hasMore'] !== 'boolean')
    )
      return deny('ERR_TOOL_FAILED', 'the upstream answered no well-formed completion');
    const completion: Record<string, JsonValue> = { values };
    if (typeof c['total'] === 'number') completion['total'] = c['total'];
    if (typeof c['hasMore'] === 'boolean') completion['hasMore'] = c['hasMore'];
    return { outcome: 'ok' as const, result: { completion } };
  });
}

/** Runs the pinned entry over `upstream`: a tool call, a prompt get, a resource read or a completion. */
export function runPinnedEntry(
  upstream: Upstream,
  entry: PinnedMcpEntry,
  params: Readonly<Record<string, unknown>>,
  timeout: number,
  channels: CallChannels = {},
): Promise<ToolOutput> {
  if (entry.kind === 'prompt') return getPinnedPrompt(upstream, entry, params, timeout);
  if (entry.kind === 'resource') return readPinnedResource(upstream, entry, params, timeout);
  if (entry.kind === 'template') return readTemplateResource(upstream, entry, params, timeout);
  if (entry.kind === 'completion') return completePinnedEntry(upstream, entry, params, timeout);
  return callPinnedTool(upstream, entry, params, timeout, channels);
}

/** What an upstream lists, for `failclosed policy pin-mcp`: its tools, and its prompts and resources when asked. */
export interface McpListing {
  readonly tools: readonly Readonly<Record<string, unknown>>[];
  readonly prompts: readonly Readonly<Record<string, unknown>>[];
  readonly resources: readonly Readonly<Record<string, unknown>>[];
  readonly templates: readonly Readonly<Record<string, unknown>>[];
}

/** Lists what `want` names over `upstream` (one session); tools always. */
export async function listCatalog(
  upstream: Upstream,
  timeout: number,
  want: { readonly prompts: boolean; readonly resources: boolean; readonly templates?: boolean },
): Promise<McpListing | Deny> {
  return withUpstream(upstream, timeout, async (client, step) => {
    const tools = await step(() => client.listTools(undefined, { timeout }));
    if ('outcome' in tools) return tools;
    const prompts = want.prompts ? await listAll(step, promptPages(client, timeout)) : [];
    if ('outcome' in prompts) return prompts;
    const resources = want.resources ? await listAll(step, resourcePages(client, timeout)) : [];
    if ('outcome' in resources) return resources;
    const templates = want.templates === true ? await listAll(step, templatePages(client, timeout)) : [];
    if ('outcome' in templates) return templates;
    return { tools: tools.value.tools, prompts, resources, templates };
  });
}
