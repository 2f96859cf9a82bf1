/**
 * The console layer's lean face: what a command line or a configuration parser needs from it
 * without loading its run-time dependencies (no package is reached from here, transitively:
 * `test/layering.test.ts`). Everything else is entered through `index.ts`.
 */
export { isIssuerUrl } from './issuer-url.js';
