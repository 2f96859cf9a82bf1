/**
 * Parameterised argv templates for command tools (SPEC §6 Shell and sandbox, OE-INV-012).
 * Each template element is a literal or contains `{param}` placeholders; every element renders
 * to exactly one argv element. Nothing is ever split, globbed or handed to a shell.
 */
import { FailclosedError } from '../../kernel/index.js';
import type { JsonValue } from '../../kernel/index.js';

const PLACEHOLDER = /\{([A-Za-z_][A-Za-z0-9_]{0,63})\}/g;
const MAX_ELEMENTS = 256;
const MAX_ELEMENT_LENGTH = 64 * 1024;

/** A parsed, frozen command template. */
export interface ArgvTemplate {
  readonly argv: readonly string[];
  /** Parameters whose values may start with `-` (opt-in per parameter). */
  readonly allowLeadingDash: ReadonlySet<string>;
}

/**
 * Parses a tool spec's `argv` and `allow_leading_dash`. `argv[0]` must be a literal absolute
 * path (the program is never chosen by parameters). Malformed → `FailclosedError`
 * `ERR_ADAPTER_UNAVAILABLE`.
 */
export function parseArgvTemplate(argv: unknown, allowLeadingDash: unknown): ArgvTemplate {
  const bad = (why: string): never => {
    throw new FailclosedError('ERR_ADAPTER_UNAVAILABLE', `command template ${why}`);
  };
  if (!Array.isArray(argv) || argv.length === 0 || argv.length > MAX_ELEMENTS)
    bad('argv must be a non-empty array');
  const elements = argv as unknown[];
  for (const el of elements) {
    if (typeof el !== 'string' || el.length > MAX_ELEMENT_LENGTH || el.includes('\0'))
      bad('element must be a string');
  }
  const program = elements[0] as string;
  if (!program.startsWith('/') || program.includes('{')) bad('program must be a literal absolute path');
  const allowed = allowLeadingDash ?? [];
  if (!Array.isArray(allowed) || allowed.some((n) => typeof n !== 'string'))
    bad('allow_leading_dash must list names');
  return Object.freeze({
    argv: Object.freeze([...(elements as string[])]),
    allowLeadingDash: new Set(allowed as string[]),
  });
}

/**
 * Renders `template` with `params` (a JSON object). A placeholder's value must be a string
 * (without NUL) or a safe integer; a missing or non-scalar value, or a value that would make an
 * element start with `-` when the template element itself does not (option injection) without
 * an opt-in for every placeholder in that element → `FailclosedError` `ERR_PARAMS_INVALID`.
 */
export function renderArgv(template: ArgvTemplate, params: JsonValue): readonly string[] {
  if (typeof params !== 'object' || params === null || Array.isArray(params)) {
    throw new FailclosedError('ERR_PARAMS_INVALID', 'command parameters must be an object');
  }
  const values = params as { readonly [key: string]: JsonValue };
  return Object.freeze(
    template.argv.map((element) => {
      const names: string[] = [];
      const rendered = element.replace(PLACEHOLDER, (_m, name: string) => {
        names.push(name);
        const v = Object.prototype.hasOwnProperty.call(values, name) ? values[name] : undefined;
        if (typeof v === 'string' && !v.includes('\0')) return v;
        if (typeof v === 'number' && Number.isSafeInteger(v)) return String(v);
        throw new FailclosedError(
          'ERR_PARAMS_INVALID',
          `placeholder ${name} needs a string or integer parameter`,
        );
      });
      if (
        rendered.startsWith('-') &&
        !element.startsWith('-') &&
        names.some((n) => !template.allowLeadingDash.has(n))
      ) {
        throw new FailclosedError('ERR_PARAMS_INVALID', 'a parameter value would start an option');
      }
      if (rendered.length > MAX_ELEMENT_LENGTH)
        throw new FailclosedError('ERR_PARAMS_INVALID', 'argv element too long');
      return rendered;
    }),
  );
}
