/**
 * The completion entries of an upstream MCP server's pinned prompts and resource templates in
 * the bundle (docs/mcp.md "Completion"): what `policy pin-mcp --completions` writes loads, and a
 * completion entry whose target, pin or parameters do not hold never loads. (OE-INV-005/013/023)
 */
import { describe, expect, it } from 'vitest';
import { mcpEntryKindOf } from '../../src/kernel/index.js';
import { parsePinnedEntry } from '../../src/execution/adapters/mcp-entries.js';
import {
  loadBundle,
  pinMcpCompletions,
  pinMcpPrompts,
  pinMcpResourceTemplates,
} from '../../src/policy/index.js';
import { PAY_TOOL, baseDoc, mustLoad } from './fixtures.js';

const SERVER = {
  name: 'up',
  url: 'https://mcp.example.com/mcp',
  fs_read: [],
  fs_write: [],
  network: true,
  egress: ['mcp.example.com:443'],
  memory_bytes: 2 ** 31,
};

const PROMPT = {
  name: 'greet',
  description: 'Greets someone.',
  arguments: [{ name: 'who', required: true }, { name: 'tone' }],
};

const TEMPLATE = { uriTemplate: 'docs://pages/{id}', name: 'Page' };

function pinned() {
  const prompts = pinMcpPrompts(SERVER, [PROMPT, { name: 'bare' }], ['greet', 'bare']).pinned;
  const templates = pinMcpResourceTemplates(SERVER, [TEMPLATE], [TEMPLATE.uriTemplate]).pinned;
  return { prompts, templates, ...pinMcpCompletions(SERVER, [...prompts, ...templates]) };
}

const adapterOf = (spec: Record<string, unknown>) => spec['adapter'] as Record<string, unknown>;

/** The prompt's completion entry, renamed `echo` (the fixture schema's action), changed by `over`. */
function entry(over: (spec: Record<string, unknown>) => void = () => undefined): Record<string, unknown> {
  const spec = structuredClone(pinned().pinned[0]!.spec) as Record<string, unknown>;
  spec['name'] = 'echo';
  over(spec);
  return spec;
}

function reasonOf(tools: unknown[]): string {
  const r = loadBundle(JSON.stringify({ ...baseDoc(), tools }));
  if (!('outcome' in r)) throw new Error('loaded');
  expect(r.code).toBe('ERR_POLICY_BUNDLE_INVALID');
  return r.reason;
}

describe('pin-mcp --completions', () => {
  it('writes ENTRY.complete for each pinned prompt with arguments and each template, typed in Cedar', () => {
    const { pinned: entries, skipped } = pinned();
    // A prompt without arguments has nothing to complete.
    expect(entries.map((e) => e.name)).toEqual(['up.prompts.greet.complete', 'up.resources.page.complete']);
    expect(skipped).toEqual([]);
    const [prompt, template] = entries;
    expect(adapterOf(prompt!.spec)).toMatchObject({ type: 'mcp', prompt: 'greet', completion: true });
    expect(adapterOf(template!.spec)).toMatchObject({
      resource_template: TEMPLATE.uriTemplate,
      completion: true,
    });
    expect(prompt!.spec['untrusted_output']).toBe(true);
    expect(prompt!.spec['parameters']).toEqual({
      type: 'object',
      additionalProperties: false,
      required: ['argument', 'value'],
      properties: {
        argument: { type: 'string', enum: ['who', 'tone'] },
        value: { type: 'string', maxLength: 1024 },
        context: {
          type: 'object',
          additionalProperties: false,
          properties: {
            who: { type: 'string', maxLength: 1024 },
            tone: { type: 'string', maxLength: 1024 },
          },
        },
      },
    });
    expect(prompt!.cedar).toContain(
      'params: { "argument": String, "value": String, "context"?: { "who"?: String, "tone"?: String } }',
    );
    expect(template!.cedar).toContain(
      'params: { "argument": String, "value": String, "context"?: { "id"?: String } }',
    );
  });

  it('what it writes loads beside the prompt and the template it completes, each its own kind', () => {
    const { prompts, templates, pinned: entries } = pinned();
    const all = [...prompts, ...templates, ...entries];
    const doc = baseDoc() as Record<string, unknown> & { schema: string };
    const bundle = mustLoad({
      ...doc,
      schema: `${doc.schema}\n${all.map((p) => p.cedar).join('\n')}`,
      tools: [...all.map((p) => p.spec), PAY_TOOL],
    });
    const kinds = bundle.document.tools.map((t) => [t.name, mcpEntryKindOf(t.adapter)]);
    expect(kinds).toContainEqual(['up.prompts.greet', 'prompt']);
    expect(kinds).toContainEqual(['up.prompts.greet.complete', 'completion']);
    expect(kinds).toContainEqual(['up.resources.page', 'template']);
    expect(kinds).toContainEqual(['up.resources.page.complete', 'completion']);
    // The Execution Layer reads it as the completion of the pinned prompt.
    const parsed = parsePinnedEntry(entries[0]!.spec['adapter'] as Record<string, unknown>);
    expect(parsed).toMatchObject({ kind: 'completion', of: 'prompt', target: 'greet' });
  });

  it('refuses parameters other than {argument, value, context} over the pinned names', () => {
    for (const change of [
      (p: { properties: Record<string, Record<string, unknown>> }) => {
        p.properties['argument'] = { type: 'string', enum: ['who', 'tone', 'other'] };
      },
      (p: { properties: Record<string, Record<string, unknown>> }) => {
        p.properties['value'] = { type: 'string' };
      },
      (p: { properties: Record<string, Record<string, unknown>> }) => {
        delete p.properties['context'];
      },
    ]) {
      const spec = entry((s) => change(s['parameters'] as never));
      expect(reasonOf([spec, PAY_TOOL])).toContain('the parameters of a completion must be exactly');
    }
  });

  it('refuses a completion of both a prompt and a template, of neither, of a tool, or not true', () => {
    const both = entry((s) => {
      adapterOf(s)['resource_template'] = TEMPLATE.uriTemplate;
    });
    expect(reasonOf([both, PAY_TOOL])).toContain('a completion entry names exactly one of prompt');
    const neither = entry((s) => {
      delete adapterOf(s)['prompt'];
    });
    expect(reasonOf([neither, PAY_TOOL])).toContain('a completion entry names exactly one of prompt');
    const tool = entry((s) => {
      delete adapterOf(s)['prompt'];
      adapterOf(s)['tool'] = 'greet';
    });
    expect(reasonOf([tool, PAY_TOOL])).toContain('a completion entry names exactly one of prompt');
    const notTrue = entry((s) => {
      adapterOf(s)['completion'] = false;
    });
    expect(reasonOf([notTrue, PAY_TOOL])).toContain('adapter.completion');
    expect(mcpEntryKindOf({ prompt: 'greet', completion: false })).toBeUndefined();
  });

  it('refuses a completion whose definition is not its pin', () => {
    const spec = entry((s) => {
      (adapterOf(s)['definition'] as Record<string, unknown>)['description'] = 'other';
    });
    expect(reasonOf([spec, PAY_TOOL])).toContain('definition_sha256');
  });
});
