/**
 * The composition layer's lean face: what a command line or a configuration parser needs from it
 * without loading its run-time dependencies (no package is reached from here, transitively:
 * `test/layering.test.ts`). Everything else is entered through `index.ts`.
 */
export {
  DEMO_CLIENT,
  dataPaths,
  readConfig,
  readClientFile,
  writeClientFile,
  readOperatorToken,
  readSigningKey,
  notificationsPath,
} from './data-dir.js';
export {
  announceServer,
  withdrawServer,
  runningServer,
  connect,
  getJson,
  operatorAction,
  operatorDownload,
} from './connect.js';
export type { ConnectOptions, Connection, HttpAnswer } from './connect.js';
export { parseBackendSpec, redactedBackend, resolveBackendSpec } from './backend-spec.js';
export { readLedgerBinding } from './ledger-binding.js';
