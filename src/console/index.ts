/**
 * The operator console in the browser (docs/console.md): its HTTP face for the Gate's listener,
 * its sign-in and enrolment service and its store. The browser modules live in `web/`, built by
 * their own tsconfig (lib dom) and served as static files.
 */
export {
  createConsoleEndpoint,
  consoleAssetsDir,
  consoleOrigins,
  checkStateChange,
  CONSOLE_CSP,
  CONSOLE_HEADERS,
  SESSION_COOKIE,
  OIDC_PENDING_COOKIE,
} from './http.js';
export type { ConsoleEndpoint } from './http.js';
export { routeApi } from './api.js';
export type { ApiAnswer as ConsoleApiAnswer, ApiDeps as ConsoleApiDeps } from './api.js';
export {
  createConsoleService,
  signInInput,
  awaitsOidc,
  isOidcBound,
  keySignedIn,
  DEFAULT_CONSOLE_TIMES,
  SIGN_IN_CONTEXT,
} from './service.js';
export {
  createOidcRelyingParty,
  isIssuerUrl,
  openPending,
  operatorRedirectUri,
  pkceChallenge,
  sealPending,
  OIDC_CLOCK_TOLERANCE_SEC,
  OIDC_PENDING_MS,
} from './oidc.js';
export type { OidcCallback, OidcConfig, OidcDeps, OidcIdentity, OidcRelyingParty } from './oidc.js';
export type { ConsoleActor, ConsoleService, ConsoleServiceDeps, ConsoleTimes, SignedIn } from './service.js';
export { createSqliteConsoleStore } from './sqlite-store.js';
export { parseOperatorSessionRow, parsePersonRow, parseSessionRow } from './rows.js';
export type {
  ConsoleSession,
  ConsoleStore,
  InvitedPerson,
  OperatorSession,
  SessionMethod,
  SignInAdmission,
} from './store.js';
export { createOperatorConsole, OPERATOR_OIDC_BINDING } from './operator-api.js';
export { createSignInGuard, DEFAULT_SIGN_IN_LIMITS } from './sign-in-guard.js';
export type { SignInAttempt, SignInGuard, SignInGuardDeps, SignInLimits } from './sign-in-guard.js';
export type {
  IncidentState,
  OperatorAccount,
  OperatorAccounts,
  OperatorActionAnswer,
  OperatorConsole,
  OperatorConsoleDeps,
  OperatorIdentity,
  OperatorPolicyPages,
} from './operator-api.js';
