/**
 * The one contract suite every ToolAdapter must pass (in-process, command, Streamable HTTP MCP):
 * results, time limit, abort, output cap, failure and malformed specs all answer with the
 * right outcome or code (OE-INV-003, OE-INV-024).
 */
import { describe, expect, it } from 'vitest';
import type { ExecutionConstraints, ToolAdapter, ToolExecutionSpec } from '../../src/execution/index.js';
import type { JsonValue } from '../../src/kernel/index.js';
import { constraints } from './support.js';

/** One tool per behaviour, expressed in the adapter's own spec format. */
export interface AdapterFixture {
  readonly adapter: ToolAdapter;
  /** Echoes `params.message` somewhere in its result. */
  readonly echo: ToolExecutionSpec;
  /** Never finishes on its own. */
  readonly slow: ToolExecutionSpec;
  /** Writes far more than 1000 bytes. */
  readonly loud: ToolExecutionSpec;
  /** Runs and fails. */
  readonly failing: ToolExecutionSpec;
  /** A spec of the adapter's type that it must refuse. */
  readonly malformed: ToolExecutionSpec;
  /** Grants every call of the fixture needs (an upstream's destination), under each test's own. */
  readonly grants?: Partial<ExecutionConstraints>;
}

/** Registers the contract suite for one adapter. */
export function runAdapterContract(name: string, fixture: () => AdapterFixture): void {
  describe(`ToolAdapter contract: ${name}`, () => {
    const call = (
      spec: ToolExecutionSpec,
      params: JsonValue,
      over = {},
      signal = new AbortController().signal,
    ) =>
      fixture().adapter.run({
        tool: 'contract_tool',
        spec,
        params,
        constraints: constraints({ ...fixture().grants, ...over }),
        signal,
      });

    it('returns the result of a successful call', async () => {
      const f = fixture();
      const out = await call(f.echo, { message: 'hello contract' });
      expect(out.outcome).toBe('ok');
      expect(JSON.stringify(out)).toContain('hello contract');
    });

    it('denies ERR_TOOL_TIMEOUT past timeout_ms', async () => {
      expect(await call(fixture().slow, {}, { timeout_ms: 200 })).toMatchObject({
        outcome: 'deny',
        code: 'ERR_TOOL_TIMEOUT',
      });
    });

    it('denies ERR_TOOL_TIMEOUT when aborted', async () => {
      const controller = new AbortController();
      const pending = call(fixture().slow, {}, {}, controller.signal);
      setTimeout(() => controller.abort(), 100);
      expect(await pending).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_TIMEOUT' });
    });

    it('denies ERR_TOOL_OUTPUT_LIMIT past max_output_bytes', async () => {
      expect(await call(fixture().loud, {}, { max_output_bytes: 1000 })).toMatchObject({
        outcome: 'deny',
        code: 'ERR_TOOL_OUTPUT_LIMIT',
      });
    });

    it('denies ERR_TOOL_FAILED when the tool fails', async () => {
      expect(await call(fixture().failing, {})).toMatchObject({ outcome: 'deny', code: 'ERR_TOOL_FAILED' });
    });

    it('denies ERR_ADAPTER_UNAVAILABLE for a malformed spec', async () => {
      expect(await call(fixture().malformed, { message: 'x' })).toMatchObject({
        outcome: 'deny',
        code: 'ERR_ADAPTER_UNAVAILABLE',
      });
    });
  });
}
