/**
 * The signing face of the kernel: everything that touches a private key. Only the Control
 * Plane (envelope issuer), the ledger (checkpoint signer), clients (request signing) and the CLI
 * may import it; `test/layering.test.ts` fails the build if the Execution Layer, the Gate or the
 * offline verifier reach it, directly or transitively (SPEC §1: "The signing key never leaves
 * the trust boundary").
 */
export {
  generateSigningKey,
  signingKeyFromSeed,
  exportSigningKeyJwk,
  importSigningKeyJwk,
  signEd25519,
} from './signing-key.js';
export type { SigningKey, Ed25519PrivateJwk } from './signing-key.js';
export { signEnvelope } from './sign-envelope.js';
export { signNote, noteSignerFor, noteSignerFromSkey } from './sign-note.js';
export type { NoteSigner } from './sign-note.js';
