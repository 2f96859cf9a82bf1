// @ts-check
/**
 * A StrykerJS ignorer: mutants inside the human-readable text of a denial, error or finding are
 * not generated. Such a mutant changes only the words a person reads; the denial code, the
 * finding code and the outcome, which are what callers, the ledger and `verify` act on, stay
 * outside these nodes and are mutated as usual.
 *
 * Ignored, and nothing else:
 * - the message argument of `deny(code, reason)`, `new FailclosedError(code, message)`,
 *   `entryFinding(view, code, message)` and `new Error(message)` (also TypeError, RangeError);
 * - the verifier checks' local finding reporters `bad(code, message, …)` and
 *   `bad(view, code, message)`: a string or template literal argument that is not a finding code;
 * - every argument of the message builders `syntax(what, at)` and `unsafeNumber(at, why)` in
 *   `kernel/json.ts`, `invalid(message)` in key parsing and `malformed(reason)` in signed notes (the
 *   offset only appears in the message);
 * - the value of an object property named `message` or `reason`.
 */
import { declareValuePlugin, PluginKind } from '@stryker-mutator/api/plugin';

/** Callee name → indexes of its message arguments ('all': every argument). */
const MESSAGE_ARGUMENTS = new Map([
  ['deny', [1]],
  ['FailclosedError', [1]],
  ['entryFinding', [2]],
  ['Error', [0]],
  ['TypeError', [0]],
  ['RangeError', [0]],
  ['syntax', 'all'],
  ['unsafeNumber', 'all'],
  ['invalid', [0]],
  ['malformed', [0]],
]);
const MESSAGE_PROPERTIES = new Set(['message', 'reason']);
/** A finding code literal (`ENVELOPE_LEDGER`), which is never message text. */
const FINDING_CODE = /^[A-Z][A-Z0-9_]+$/;

/**
 * True for a message argument of a finding reporter `bad(code, message, partial?)` or
 * `bad(view, code, message)`: a string or template literal after the first argument that is not
 * itself a finding code. Decided on the argument alone: by the time Stryker visits it, the
 * arguments before it may already be instrumented.
 * @param {any} path
 */
function isReporterMessage(path) {
  if (typeof path.key !== 'number' || path.key === 0) return false;
  const node = path.node;
  if (node.type === 'TemplateLiteral') return true;
  return node.type === 'StringLiteral' && !FINDING_CODE.test(node.value);
}

/** @param {any} callee */
function calleeName(callee) {
  if (callee?.type === 'Identifier') return callee.name;
  if (callee?.type === 'MemberExpression' && callee.property?.type === 'Identifier')
    return callee.property.name;
  return undefined;
}

/** @param {any} key */
function propertyName(key) {
  if (key?.type === 'Identifier') return key.name;
  if (key?.type === 'StringLiteral') return key.value;
  return undefined;
}

export const strykerPlugins = [
  declareValuePlugin(PluginKind.Ignore, 'MessageText', {
    /** @param {any} path */
    shouldIgnore(path) {
      const parent = path.parentPath;
      if (parent === null || parent === undefined) return undefined;
      if ((parent.isCallExpression() || parent.isNewExpression()) && path.listKey === 'arguments') {
        const name = calleeName(parent.node.callee);
        const which = name === undefined ? undefined : MESSAGE_ARGUMENTS.get(name);
        if (which === 'all' || (Array.isArray(which) && which.includes(path.key))) {
          return `message text of ${name}(): it changes only words a person reads`;
        }
        if (name === 'bad' && isReporterMessage(path)) {
          return 'message text of a finding reporter bad(): it changes only words a person reads';
        }
      }
      if (
        parent.isObjectProperty() &&
        path.key === 'value' &&
        MESSAGE_PROPERTIES.has(propertyName(parent.node.key))
      ) {
        return 'message text property: it changes only words a person reads';
      }
      return undefined;
    },
  }),
];
