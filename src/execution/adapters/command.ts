/**
 * Command tool adapter (`type: 'command'`): an argv template run inside the OS sandbox
 * (SPEC §6 Shell and sandbox, OE-INV-012/024, OE-INV-006). Never a shell string.
 *
 * Spec: `{ type: 'command', argv: string[], allow_leading_dash?: string[],
 * env_secrets?: { ENV_NAME: 'SECRET_NAME' } }`. Secrets are resolved here, passed through the
 * sandbox environment (never argv, which other host users can read), and the result is
 * redacted by the executor before it leaves.
 *
 * Result: `{ exit_code: 0, stdout, stderr }` (UTF-8 text). A non-zero exit or death by signal
 * → `ERR_TOOL_FAILED`, output withheld.
 */
import { deny, FailclosedError } from '../../kernel/index.js';
import type { Sandbox } from '../sandbox/bwrap.js';
import { parseArgvTemplate, renderArgv } from './argv-template.js';
import type { ToolAdapter } from './types.js';

/** Options for {@link createCommandAdapter}. */
export interface CommandAdapterOptions {
  readonly sandbox: Sandbox;
}

/**
 * Creates the command adapter. Denies with `ERR_ADAPTER_UNAVAILABLE` (malformed spec, unknown
 * secret reference), `ERR_PARAMS_INVALID` (placeholder value rejected), and passes through the
 * sandbox's `ERR_SANDBOX_UNAVAILABLE`, `ERR_TOOL_TIMEOUT`, `ERR_TOOL_OUTPUT_LIMIT`.
 */
export function createCommandAdapter(options: CommandAdapterOptions): ToolAdapter {
  return {
    async run(call) {
      let argv: readonly string[];
      const env: Record<string, string> = {};
      try {
        const template = parseArgvTemplate(call.spec.argv, call.spec.allow_leading_dash);
        argv = renderArgv(template, call.params);
        const refs = call.spec.env_secrets ?? {};
        if (typeof refs !== 'object' || refs === null || Array.isArray(refs)) {
          return deny('ERR_ADAPTER_UNAVAILABLE', 'env_secrets must map names to secret references');
        }
        for (const [name, ref] of Object.entries(refs as Record<string, unknown>)) {
          if (call.secrets === undefined || typeof ref !== 'string') {
            return deny('ERR_ADAPTER_UNAVAILABLE', 'secret reference cannot be resolved');
          }
          env[name] = call.secrets.resolve(ref);
        }
      } catch (err) {
        if (err instanceof FailclosedError) return deny(err.code, err.message);
        return deny('ERR_ADAPTER_UNAVAILABLE', 'command spec is malformed');
      }
      const result = await options.sandbox.run({
        argv,
        env,
        constraints: call.constraints,
        signal: call.signal,
      });
      if (result.outcome === 'deny') return result;
      if (result.exit_code !== 0) return deny('ERR_TOOL_FAILED', 'command exited unsuccessfully');
      return {
        outcome: 'ok',
        result: {
          exit_code: 0,
          stdout: result.stdout.toString('utf8'),
          stderr: result.stderr.toString('utf8'),
        },
      };
    },
  };
}
