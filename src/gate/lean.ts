/**
 * The Gate layer's lean face: what a command line or a configuration parser needs from it
 * without loading its run-time dependencies (no package is reached from here, transitively:
 * `test/layering.test.ts`). Everything else is entered through `index.ts`.
 */
export { MAX_CALL_WAIT_MS, OAUTH_ALGORITHMS } from './bounds.js';
export { BOOTSTRAP_OPERATOR, OPERATOR_NAME, OPERATOR_TENANT } from './operator-names.js';
