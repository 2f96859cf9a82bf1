/**
 * Output redaction (SPEC §6 Redaction and egress, OE-INV-010, OE-INV-009, §7 scenario 16).
 * Every result leaves the Execution Layer through a {@link Redactor}: known secret values (and
 * their base64, base64url, hex, URL- and JSON-escaped forms) are replaced by string search, then
 * a fixed, reviewed set of secret and PII patterns is applied. No RegExp is ever built from
 * untrusted text or from a secret.
 */
import type { JsonValue } from '../kernel/index.js';

/** Replacement for a known secret value. */
export const REDACTED_SECRET = '[REDACTED:secret]';

/** The reviewed pattern catalog. Every pattern is global, anchored on fixed literals and bounded. */
export const REDACTION_PATTERNS = {
  private_key_block:
    /-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----|$)/g,
  aws_access_key_id: /\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b/g,
  aws_secret_access_key: /(aws_?secret_?access_?key["']?\s{0,4}[:=]\s{0,4}["']?)[A-Za-z0-9/+=]{40}/gi,
  bearer_token: /(\bBearer\s{1,4})[A-Za-z0-9\-._~+/]{8,4096}=*/gi,
  jwt: /\beyJ[A-Za-z0-9_-]{4,8192}\.[A-Za-z0-9_-]{4,65536}\.[A-Za-z0-9_-]{0,8192}/g,
  github_token: /\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b/g,
  slack_token: /\bxox[abprs]-[A-Za-z0-9-]{10,255}/g,
  credential_assignment:
    /((?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token)["']?\s{0,4}[:=]\s{0,4}["']?)[^\s"'&,;]{4,1024}/gi,
  email: /\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}\b/g,
} as const satisfies Record<string, RegExp>;

/** Name of a pattern in {@link REDACTION_PATTERNS}. */
export type RedactionPatternName = keyof typeof REDACTION_PATTERNS;

/** Patterns applied when none are named: everything except `email`. */
export const DEFAULT_REDACTION_PATTERNS: readonly RedactionPatternName[] = Object.freeze([
  'private_key_block',
  'aws_access_key_id',
  'aws_secret_access_key',
  'bearer_token',
  'jwt',
  'github_token',
  'slack_token',
  'credential_assignment',
]);

/** Redacts secrets and patterns from output before it leaves the Execution Layer. */
export interface Redactor {
  /**
   * A redacted copy of `value` (strings, object keys and numbers whose text contains a secret).
   * Throws `TypeError` on anything that is not plain JSON or nests deeper than 64; the executor
   * withholds the result and denies (OE-INV-010).
   */
  redact(value: JsonValue): JsonValue;
  /** `text` with every secret form and pattern replaced. */
  redactText(text: string): string;
}

/** Options for {@link createRedactor}. */
export interface RedactorOptions {
  /** Current secret values (read on every call, so rotated values are covered). */
  readonly secrets: () => readonly string[];
  /** Pattern names from {@link REDACTION_PATTERNS}; default {@link DEFAULT_REDACTION_PATTERNS}. */
  readonly patterns?: readonly RedactionPatternName[];
}

const MAX_DEPTH = 64;
/** Fragments of an embedded base64 encoding shorter than this are not searched (too generic). */
const MIN_FRAGMENT = 6;

/** The stable characters of `bytes` base64-encoded after `shift` unknown leading bytes. */
function base64Fragment(bytes: Buffer, shift: number, alphabet: 'base64' | 'base64url'): string {
  const enc = Buffer.concat([Buffer.alloc(shift), bytes, Buffer.alloc(3)]).toString(alphabet);
  const first = Math.ceil((8 * shift) / 6);
  const end = Math.floor((8 * (shift + bytes.length)) / 6);
  return enc.slice(first, end);
}

/** Every encoded form of one secret value, longest first. */
export function secretForms(secret: string): string[] {
  const bytes = Buffer.from(secret, 'utf8');
  const forms = new Set<string>([secret]);
  for (const alphabet of ['base64', 'base64url'] as const) {
    const full = bytes.toString(alphabet);
    forms.add(full);
    forms.add(full.replace(/=+$/, ''));
    for (const shift of [0, 1, 2]) {
      const fragment = base64Fragment(bytes, shift, alphabet);
      if (fragment.length >= MIN_FRAGMENT) forms.add(fragment);
    }
  }
  const hex = bytes.toString('hex');
  forms.add(hex);
  forms.add(hex.toUpperCase());
  const uri = encodeURIComponent(secret);
  forms.add(uri);
  forms.add(uri.replace(/%20/g, '+'));
  forms.add(uri.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()));
  forms.add(JSON.stringify(secret).slice(1, -1));
  forms.delete('');
  return [...forms].sort((a, b) => b.length - a.length);
}

/**
 * Creates a {@link Redactor}. Pattern names outside the catalog are a configuration error
 * (`TypeError` at creation). Empty secret values are ignored. (OE-INV-010, OE-INV-009)
 */
export function createRedactor(options: RedactorOptions): Redactor {
  const names = options.patterns ?? DEFAULT_REDACTION_PATTERNS;
  const patterns = names.map((name) => {
    if (!Object.prototype.hasOwnProperty.call(REDACTION_PATTERNS, name)) {
      throw new TypeError(`unknown redaction pattern ${String(name)}`);
    }
    return { name, re: REDACTION_PATTERNS[name] };
  });

  const currentForms = (): string[] => {
    const all = new Set<string>();
    for (const secret of options.secrets()) {
      if (typeof secret !== 'string' || secret.length === 0) continue;
      for (const form of secretForms(secret)) all.add(form);
    }
    return [...all].sort((a, b) => b.length - a.length);
  };

  const redactWith = (text: string, forms: readonly string[]): string => {
    let out = text;
    for (const form of forms) {
      // Plain string search: secrets are never turned into RegExps.
      if (out.includes(form)) out = out.split(form).join(REDACTED_SECRET);
    }
    for (const { name, re } of patterns) {
      out = out.replace(re, (...args: unknown[]) => {
        const prefix = typeof args[1] === 'string' ? args[1] : '';
        return `${prefix}[REDACTED:${name}]`;
      });
    }
    return out;
  };

  const walk = (value: JsonValue, forms: readonly string[], depth: number): JsonValue => {
    if (depth > MAX_DEPTH) throw new TypeError('result nests too deeply');
    if (value === null || typeof value === 'boolean') return value;
    if (typeof value === 'string') return redactWith(value, forms);
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw new TypeError('result holds a non-finite number');
      const text = String(value);
      return redactWith(text, forms) === text ? value : REDACTED_SECRET;
    }
    if (Array.isArray(value)) return Object.freeze(value.map((v: JsonValue) => walk(v, forms, depth + 1)));
    if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
      const out: Record<string, JsonValue> = {};
      for (const [key, v] of Object.entries(value as Record<string, JsonValue>)) {
        let k = redactWith(key, forms);
        for (let n = 2; Object.prototype.hasOwnProperty.call(out, k); n++)
          k = `${redactWith(key, forms)}#${n}`;
        // Defined, not assigned: a member named `__proto__` (JSON.parse makes it an own member)
        // is kept as one, never taken for the prototype's setter.
        Object.defineProperty(out, k, {
          value: walk(v, forms, depth + 1),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return Object.freeze(out);
    }
    throw new TypeError('result is not plain JSON');
  };

  return {
    redact: (value) => walk(value, currentForms(), 0),
    redactText: (text) => redactWith(text, currentForms()),
  };
}
