/** Calls of the console's API: same-origin JSON with the session cookie; answers parsed defensively. */

/** An API answer. */
export interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

function asObject(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

async function call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`/console/api/${path}`, {
    method,
    credentials: 'same-origin',
    cache: 'no-store',
    headers: method === 'POST' ? { 'content-type': 'application/json' } : {},
    ...(method === 'POST' ? { body: JSON.stringify(body ?? {}) } : {}),
  });
  let parsed: unknown = {};
  try {
    parsed = await res.json();
  } catch {
    parsed = { outcome: 'deny', code: 'ERR_INTERNAL', reason: 'unreadable answer' };
  }
  return { status: res.status, body: asObject(parsed) };
}

/** GET `/console/api/{path}`. */
export const get = (path: string): Promise<Answer> => call('GET', path);
/** POST JSON to `/console/api/{path}`. */
export const post = (path: string, body: unknown): Promise<Answer> => call('POST', path, body);

/** The denial code and reason of a refused answer, as text. */
export function refusal(a: Answer): string {
  const code = typeof a.body['code'] === 'string' ? a.body['code'] : `HTTP ${a.status}`;
  const reason = typeof a.body['reason'] === 'string' ? a.body['reason'] : '';
  return reason === '' ? code : `${code}: ${reason}`;
}

/**
 * Back from the identity provider on `page`: hands the code and state to the gate's `route`;
 * true when signed in. `say` tells the person what happened.
 */
export async function oidcReturn(
  params: URLSearchParams,
  page: string,
  route: string,
  say: (message: string, kind?: 'info' | 'error') => void,
): Promise<boolean> {
  if (!params.has('state') || !(params.has('code') || params.has('error'))) return false;
  // The code leaves the address bar and the history at once.
  window.history.replaceState(null, '', page);
  if (params.has('error')) {
    say(`The identity provider refused the sign-in (${params.get('error') ?? ''})`, 'error');
    return false;
  }
  const a = await post(route, {
    code: params.get('code'),
    state: params.get('state'),
    ...(params.has('iss') ? { iss: params.get('iss') } : {}),
  });
  if (a.status !== 200) {
    say(`Sign-in refused (${refusal(a)})`, 'error');
    return false;
  }
  say('Signed in with your identity provider.');
  return true;
}
