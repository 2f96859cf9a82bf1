/**
 * Which tools a principal could be allowed to call (MCP tools/list, docs/mcp.md): Cedar's
 * partial evaluation over the demo bundle with parameters and taint unknown. Deny by default.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildBundleFromDir, callableTools, permitReach } from '../../src/policy/index.js';
import type { LoadedBundle } from '../../src/policy/index.js';
import { REPO_ROOT } from '../support/paths.js';

let bundle: LoadedBundle;
beforeAll(async () => {
  const b = await buildBundleFromDir(join(REPO_ROOT, 'examples/demo-policy'));
  if ('outcome' in b) throw new Error(b.reason);
  bundle = b.bundle;
});

const names = (roles: string[], tenant = 'acme'): string[] =>
  callableTools(bundle, { id: 'agent-1', tenant, roles }).map((t) => t.name);

describe('callableTools', () => {
  it('lists what policy allows outright and what a permit may still allow (transfer_funds: depends on the amount)', () => {
    expect(names([])).toEqual([
      'echo',
      'get_time',
      'list_files',
      'math.add',
      'read_inbox',
      'send_email',
      'transfer_funds',
    ]);
  });

  it('a permit whose condition the principal cannot meet hides the tool (delete_records needs the operator role)', () => {
    expect(names([])).not.toContain('delete_records');
    expect(names(['operator'])).toContain('delete_records');
  });

  it('an unconditional forbid hides the tool (no outbound email for globex)', () => {
    expect(names([], 'globex')).not.toContain('send_email');
    expect(names([], 'globex')).toContain('echo');
  });

  it('a bundle whose policies do not evaluate lists nothing (deny by default)', () => {
    const broken: LoadedBundle = {
      hash: bundle.hash,
      document: {
        ...bundle.document,
        policies: { bad: 'permit (principal, action, resource) when { nope };' },
      },
    };
    expect(callableTools(broken, { id: 'agent-1', tenant: 'acme', roles: [] })).toEqual([]);
  });
});

/** A tool of the demo bundle by name. */
function toolNamed(name: string): LoadedBundle['document']['tools'][number] {
  const t = bundle.document.tools.find((x) => x.name === name);
  if (t === undefined) throw new Error(`no tool ${name}`);
  return t;
}

describe('permitReach (FC-INV-6 inventory: could any rule ever permit the action)', () => {
  it('a tool some permit names is possible, whoever calls (delete_records: operators only)', () => {
    for (const name of ['echo', 'send_email', 'transfer_funds', 'delete_records'])
      expect(permitReach(bundle, toolNamed(name))).toBe('possible');
  });

  it('a tool no permit names is never permitted', () => {
    const { 'send-email': _dropped, ...rest } = bundle.document.policies;
    const without: LoadedBundle = { hash: bundle.hash, document: { ...bundle.document, policies: rest } };
    expect(permitReach(without, toolNamed('send_email'))).toBe('never');
    expect(permitReach(without, toolNamed('echo'))).toBe('possible');
  });

  it('a forbid that always holds makes it never', () => {
    const forbidden: LoadedBundle = {
      hash: bundle.hash,
      document: {
        ...bundle.document,
        policies: {
          ...bundle.document.policies,
          stop: 'forbid (principal, action == Action::"echo", resource);',
        },
      },
    };
    expect(permitReach(forbidden, toolNamed('echo'))).toBe('never');
  });

  it('policies that do not evaluate are unknown, not possible', () => {
    const broken: LoadedBundle = {
      hash: bundle.hash,
      document: {
        ...bundle.document,
        policies: { bad: 'permit (principal, action, resource) when { nope };' },
      },
    };
    expect(permitReach(broken, toolNamed('echo'))).toBe('unknown');
  });
});
