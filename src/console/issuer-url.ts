/**
 * Which OpenID Connect issuer URLs the console accepts, apart from the sign-in code so that
 * reading `failclosed.json` (`src/embedded/console-config.ts`) does not load a JOSE library.
 */

/** True for an https URL, or an http URL on loopback (the only place plain HTTP is accepted). */
export function isIssuerUrl(v: string): boolean {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return false;
  }
  const loopback = u.hostname === '127.0.0.1' || u.hostname === 'localhost' || u.hostname === '[::1]';
  return (
    (u.protocol === 'https:' || (u.protocol === 'http:' && loopback)) &&
    u.hash === '' &&
    u.username === '' &&
    u.password === ''
  );
}
