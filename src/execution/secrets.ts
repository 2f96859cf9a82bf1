/**
 * Secret references (SPEC §6 Secrets, OE-INV-009, L7 Secret Handling). Tools name secrets by
 * reference; only the Execution Layer resolves a reference to its value, immediately before the
 * adapter runs. Values never enter the ledger, logs, envelopes, denial reasons or results
 * (results pass through the redactor, which knows every value this resolver can return).
 */
import { readFileSync } from 'node:fs';
import { FailclosedError } from '../kernel/index.js';

/** Resolves secret references to values inside the Execution Layer only. */
export interface SecretResolver {
  /**
   * The value for `name`. Throws {@link FailclosedError} `ERR_ADAPTER_UNAVAILABLE` when the
   * name is malformed or unknown; the error text names the reference, never a value.
   */
  resolve(name: string): string;
  /** Every value this resolver can return, for the redactor (OE-INV-010). */
  knownValues(): readonly string[];
}

/** A secret reference name: upper-case letters, digits and `_`, starting with a letter. */
export const SECRET_NAME = /^[A-Z][A-Z0-9_]{0,63}$/;

/** Prefix of environment variables that hold secrets: `FC_SECRET_<NAME>`. */
export const SECRET_ENV_PREFIX = 'FC_SECRET_';

/** Options for {@link createEnvSecretResolver}. */
export interface EnvSecretResolverOptions {
  /** Environment to read `FC_SECRET_<NAME>` from. Pass `process.env` at the composition root. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** A JSON file holding `{ "<NAME>": "<value>" }`; read once at creation. */
  readonly file?: string;
}

/**
 * A {@link SecretResolver} over `FC_SECRET_<NAME>` environment variables and an optional JSON
 * secrets file (the file wins on a name present in both). Snapshotted at creation: later
 * changes to the environment are not seen. A malformed file throws at creation (fail closed at
 * start-up rather than at call time); the error never quotes the file's content.
 */
export function createEnvSecretResolver(options: EnvSecretResolverOptions): SecretResolver {
  const values = new Map<string, string>();
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (!key.startsWith(SECRET_ENV_PREFIX) || typeof value !== 'string' || value.length === 0) continue;
    const name = key.slice(SECRET_ENV_PREFIX.length);
    if (SECRET_NAME.test(name)) values.set(name, value);
  }
  if (options.file !== undefined) {
    let parsed: unknown;
    try {
      // Operator-supplied configuration, parsed once at start-up.
      parsed = JSON.parse(readFileSync(options.file, 'utf8'));
    } catch {
      throw new FailclosedError('ERR_ADAPTER_UNAVAILABLE', 'secrets file is unreadable or not JSON');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new FailclosedError('ERR_ADAPTER_UNAVAILABLE', 'secrets file must hold a JSON object');
    }
    for (const [name, value] of Object.entries(parsed)) {
      if (!SECRET_NAME.test(name) || typeof value !== 'string' || value.length === 0) {
        throw new FailclosedError('ERR_ADAPTER_UNAVAILABLE', 'secrets file holds a malformed entry');
      }
      values.set(name, value);
    }
  }
  const known = Object.freeze([...new Set(values.values())]);
  return {
    resolve(name) {
      if (typeof name !== 'string' || !SECRET_NAME.test(name)) {
        throw new FailclosedError('ERR_ADAPTER_UNAVAILABLE', 'malformed secret reference');
      }
      const value = values.get(name);
      if (value === undefined)
        throw new FailclosedError('ERR_ADAPTER_UNAVAILABLE', `unknown secret reference ${name}`);
      return value;
    },
    knownValues: () => known,
  };
}
