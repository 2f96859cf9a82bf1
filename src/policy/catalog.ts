/**
 * The tool catalog of one bundle: lookup by name and parameter validation against each tool's
 * closed JSON Schema, compiled once when the bundle was loaded. (OE-INV-004/005)
 */
import { deny } from '../kernel/index.js';
import type { Deny, JsonValue } from '../kernel/index.js';
import { compiledOf } from './bundle.js';
import type { LoadedBundle, ToolSpec } from './types.js';

/** Tools of one bundle. */
export interface ToolCatalog {
  /** Hash of the bundle the catalog comes from. */
  readonly bundleHash: string;
  /** The tool named `name`, or undefined: the caller denies with `ERR_TOOL_UNKNOWN` (OE-INV-005). */
  getTool(name: string): ToolSpec | undefined;
  /** Tool names, sorted. */
  listTools(): readonly string[];
  /**
   * Validates `params` against the tool's schema without changing them (no coercion, defaults
   * or removal). `{ outcome: 'ok' }` or a deny with `ERR_PARAMS_INVALID`; `ERR_TOOL_UNKNOWN` for
   * a tool not in this catalog. (OE-INV-004)
   */
  validateParams(tool: ToolSpec | string, params: JsonValue): { readonly outcome: 'ok' } | Deny;
  /** Every reason `params` fail the tool's schema (empty when they pass or the tool is unknown), for the dry run. */
  explainParams(tool: string, params: JsonValue): readonly string[];
}

const OK = Object.freeze({ outcome: 'ok' as const });

/**
 * Builds the catalog of a bundle returned by `loadBundle` (anything else is a `TypeError`).
 * (OE-INV-004/005)
 */
export function createToolCatalog(bundle: LoadedBundle): ToolCatalog {
  const { validators } = compiledOf(bundle);
  const tools = new Map<string, ToolSpec>(bundle.document.tools.map((t) => [t.name, t]));
  const names = Object.freeze([...tools.keys()].sort());
  return Object.freeze({
    bundleHash: bundle.hash,
    getTool: (name: string) => (typeof name === 'string' ? tools.get(name) : undefined),
    listTools: () => names,
    explainParams(tool: string, params: JsonValue) {
      try {
        return validators.get(tool)?.explain(params) ?? [];
      } catch {
        return ['the parameters could not be validated'];
      }
    },
    validateParams(tool: ToolSpec | string, params: JsonValue) {
      const name = typeof tool === 'string' ? tool : tool.name;
      const validate = validators.get(name);
      if (validate === undefined) return deny('ERR_TOOL_UNKNOWN', 'the tool is not in the active catalog');
      try {
        return validate(params)
          ? OK
          : deny('ERR_PARAMS_INVALID', `parameters do not match the schema of ${name}`);
      } catch {
        return deny('ERR_PARAMS_INVALID', `parameters could not be validated for ${name}`);
      }
    },
  });
}
