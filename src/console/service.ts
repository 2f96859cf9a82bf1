/**
 * The console's people, sessions and sign-in (OE-INV-020 "distinct humans", L7 Identity &
 * Signing; docs/console.md): an operator invites a person as an approver (a one-time code, only
 * its hash stored, expiring), the person signs in with it once and enrols a device key made in
 * the browser (non-extractable WebCrypto Ed25519), the operator confirms that key's fingerprint
 * and only then is it registered with the approval service and can sign approvals. Later
 * sign-ins are a challenge signed by the device key. Invitation, enrolment and confirmation are
 * ledgered with who did them. Every failure is a deny; nothing here ever allows on error.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  canonicalize,
  decodeBase64url,
  deny,
  encodeBase64url,
  isDeny,
  isLedgerRef,
  parsePublicJwk,
  sha256Hex,
  verifyEd25519,
  withDeadline,
} from '../kernel/index.js';
import type { Clock, Deny, EntryType, JsonObject } from '../kernel/index.js';
import { parseApproverScope } from '../control-plane/index.js';
import type { ApprovalService, ApproverRecord } from '../control-plane/index.js';
import type { OidcCallback, OidcRelyingParty } from './oidc.js';
import type { ConsoleSession, ConsoleStore, InvitedPerson } from './store.js';

/** Context string of a console sign-in signature: never a valid approval or request signature. */
export const SIGN_IN_CONTEXT = 'failclosed-console-sign-in-v1\n';

/** Who did an admin action (the ledger entry's actor). */
export interface ConsoleActor {
  readonly id: string;
  readonly role: string;
}

/** Session and invitation lifetimes (ms). */
export interface ConsoleTimes {
  /** A session unused this long ends. Default 15 min. */
  readonly idleMs: number;
  /** A session ends this long after its sign-in whatever its use. Default 8 h. */
  readonly absoluteMs: number;
  /** A code sign-in session (enrolment only) lasts this long. Default 10 min. */
  readonly enrolMs: number;
  /** A sign-in challenge is good this long. Default 2 min. */
  readonly challengeMs: number;
  /** Default invitation lifetime. Default 24 h. */
  readonly inviteMs: number;
}

/**
 * How far the clocks of gates on one database may disagree: a session created by a gate up to this
 * far ahead of the one reading it holds there; one from further in the future ends (a clock set
 * back, or a forged row).
 */
export const SESSION_CLOCK_SKEW_MS = 2 * 60_000;

/** The default {@link ConsoleTimes}. */
export const DEFAULT_CONSOLE_TIMES: ConsoleTimes = Object.freeze({
  idleMs: 15 * 60_000,
  absoluteMs: 8 * 3_600_000,
  enrolMs: 10 * 60_000,
  challengeMs: 2 * 60_000,
  inviteMs: 24 * 3_600_000,
});

/** What the console service needs. */
export interface ConsoleServiceDeps {
  readonly store: ConsoleStore;
  readonly approvals: ApprovalService;
  readonly append: (entry: {
    type: EntryType;
    trace_id: string;
    request_id: string;
    tenant: string;
    actor: ConsoleActor;
    payload: JsonObject;
  }) => Promise<unknown>;
  /** True when `name` is a client identity (agents never approve, OE-INV-002). */
  readonly isClient: (name: string) => Promise<boolean>;
  readonly now: Clock;
  readonly times?: Partial<ConsoleTimes>;
  /** The configured OIDC relying party; absent: local sign-in only, and no invitation can be bound. */
  readonly oidc?: OidcRelyingParty;
}

/** A signed-in person as the console routes see them. */
export interface SignedIn {
  readonly session: ConsoleSession;
  readonly person: InvitedPerson;
  /** The registered approver once the enrolment is confirmed (roles and tenants from there). */
  readonly approver: ApproverRecord | undefined;
}

/** The console service. */
export interface ConsoleService {
  readonly times: ConsoleTimes;
  /** Operator: invites `name`; answers the one-time code (shown once, never stored). */
  invite(
    input: { name: unknown; roles: unknown; tenants: unknown; ttl_sec?: unknown; oidc_subject?: unknown },
    actor: ConsoleActor,
  ): Promise<{ code: string; expires_at: number } | Deny>;
  /** Operator: confirms the device key `kid` of `name` and registers it with the approval service. */
  confirm(input: { name: unknown; kid: unknown }, actor: ConsoleActor): Promise<ApproverRecord | Deny>;
  /** Signs in with the enrolment code (once); answers the session id for the cookie. */
  signInWithCode(name: unknown, code: unknown): Promise<{ id: string } | Deny>;
  /**
   * A fresh challenge for a device-key sign-in: `id.expiry.mac`, MAC-ed with a key of this
   * process, so asking for one writes nothing (an unauthenticated request never costs a write).
   */
  challenge(name: unknown): Promise<{ challenge: string } | Deny>;
  /** Signs in with the device key's signature over {@link signInInput}; each challenge once. */
  signInWithKey(name: unknown, challenge: unknown, signature: unknown): Promise<{ id: string } | Deny>;
  /** Enrols the device's public key for the signed-in person (a code session, once). */
  enrol(who: SignedIn, jwk: unknown): Promise<{ kid: string } | Deny>;
  /** The live session with this cookie value; denies `ERR_UNAUTHENTICATED` when unknown or expired. */
  authenticate(sessionId: string | undefined): Promise<SignedIn | Deny>;
  signOut(sessionId: string): Promise<void>;
  /**
   * Starts the OIDC sign-in of a person bound to an OIDC identity, from their code or key
   * session: the issuer's authorization URL and the sealed pending sign-in (its cookie).
   */
  oidcBegin(who: SignedIn): Promise<{ url: string; pending: string } | Deny>;
  /**
   * Completes it: the ID token must name the person's bound issuer and subject; the session is
   * then replaced by one that proved both (`code+oidc`, `key+oidc`), whose id is answered.
   */
  oidcFinish(
    who: SignedIn,
    pending: string | undefined,
    callback: OidcCallback,
  ): Promise<{ id: string } | Deny>;
}

/** True when the person's invitation is bound to an OIDC identity. */
export const isOidcBound = (p: InvitedPerson): boolean => p.oidc_subject !== null;

/**
 * True when the session signed in with the device key and, for a person bound to an OIDC
 * identity, proved that identity too: only such a session reads the inbox, evidence, or approves.
 */
export function keySignedIn(who: SignedIn): boolean {
  const m = who.session.method;
  return m === 'key+oidc' || (m === 'key' && !isOidcBound(who.person));
}

/** True when the session is a bound person's that has not proved its OIDC identity yet. */
export function awaitsOidc(who: SignedIn): boolean {
  return isOidcBound(who.person) && !who.session.method.endsWith('+oidc');
}

const SUBJECT = /^[\x21-\x7e]{1,255}$/;

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const TOKEN = /^[A-Za-z0-9_-]{16,128}$/;
const CHALLENGE = /^([A-Za-z0-9_-]{22})\.(\d{1,15})\.([A-Za-z0-9_-]{43})$/;

/** The bytes a device key signs to sign in: context || RFC 8785 `{challenge, name}`. */
export function signInInput(name: string, challenge: string): Buffer {
  return Buffer.concat([
    Buffer.from(SIGN_IN_CONTEXT, 'utf8'),
    Buffer.from(canonicalize({ challenge, name }), 'utf8'),
  ]);
}

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

const unauthenticated = (reason: string): Deny => deny('ERR_UNAUTHENTICATED', reason);

/** Creates the console service over its store and the approval service. */
export function createConsoleService(deps: ConsoleServiceDeps): ConsoleService {
  const times: ConsoleTimes = Object.freeze({ ...DEFAULT_CONSOLE_TIMES, ...deps.times });
  const { store } = deps;
  const challengeKey = randomBytes(32);
  const challengeMac = (name: string, id: string, exp: string): Buffer =>
    createHmac('sha256', challengeKey).update(`${name}\n${id}\n${exp}`, 'utf8').digest();

  const ledger = async (type: EntryType, actor: ConsoleActor, payload: JsonObject): Promise<true | Deny> => {
    const id = sha256Hex(canonicalize({ type, payload, at: deps.now() })).slice(0, 32);
    const r = await withDeadline(
      () => deps.append({ type, trace_id: id, request_id: id, tenant: '*', actor, payload }),
      5_000,
    );
    return r.status === 'ok' && isLedgerRef(r.value)
      ? true
      : deny('ERR_LEDGER_UNAVAILABLE', 'the console action was not recorded');
  };

  const newSession = async (name: string, method: 'code' | 'key'): Promise<{ id: string }> => {
    const id = encodeBase64url(randomBytes(32));
    const at = deps.now();
    await store.createSession(
      { id_sha256: sha256Hex(id), name, method, created_at: at, last_seen: at },
      at - times.idleMs,
    );
    return { id };
  };

  /** The key a person signs in with: the registered approver key once confirmed, else the enrolled one. */
  /**
   * The approver registered under the person's name: the approval store is the truth of
   * confirmation. `'other'` when the name is registered with another key or was removed.
   */
  const approverOf = async (p: InvitedPerson): Promise<ApproverRecord | 'other' | undefined> => {
    const rec = (await deps.approvals.listApprovers()).find((x) => x.name === p.name);
    if (rec === undefined) return undefined;
    return rec.status === 'active' && rec.kid === p.kid ? rec : 'other';
  };

  const signInKey = async (p: InvitedPerson) => {
    if ((await approverOf(p)) === 'other') return undefined;
    try {
      return p.public_jwk === null ? undefined : parsePublicJwk(p.public_jwk);
    } catch {
      return undefined;
    }
  };

  const service: ConsoleService = {
    times,
    async invite(input, actor) {
      const scope = parseApproverScope(input);
      if (isDeny(scope)) return scope;
      const { name, tenants } = scope;
      const ttl = input.ttl_sec;
      if (
        ttl !== undefined &&
        !(typeof ttl === 'number' && Number.isSafeInteger(ttl) && ttl > 0 && ttl <= 7 * 86_400)
      )
        return deny('ERR_APPROVAL_INVALID', 'ttl_sec must be 1 .. 604800');
      if (await deps.isClient(name))
        return deny('ERR_APPROVER_AGENT', 'the name is a client identity: agents can never approve');
      if (await deps.approvals.isApprover(name))
        return deny('ERR_APPROVAL_INVALID', 'the approver already exists');
      const subject = input.oidc_subject;
      if (subject !== undefined && deps.oidc === undefined)
        return deny('ERR_APPROVAL_INVALID', 'no OIDC issuer is configured (console.oidc)');
      if (subject !== undefined && (typeof subject !== 'string' || !SUBJECT.test(subject)))
        return deny('ERR_APPROVAL_INVALID', 'oidc_subject must be 1 .. 255 printable ASCII characters');
      if (subject === undefined && deps.oidc?.config.required === true)
        return deny('ERR_APPROVAL_INVALID', 'every invitation must be bound to an OIDC subject');
      const binding =
        subject === undefined || deps.oidc === undefined
          ? undefined
          : { issuer: deps.oidc.config.issuer, subject };
      const at = deps.now();
      const expires = at + (ttl === undefined ? times.inviteMs : ttl * 1000);
      const sorted = [...scope.roles];
      const recorded = await ledger('admin.approver_invited', actor, {
        client: name,
        roles: sorted,
        tenants: tenants === '*' ? '*' : [...tenants],
        expires_at: new Date(expires).toISOString(),
        ...(binding === undefined ? {} : { oidc: { ...binding } }),
      });
      if (isDeny(recorded)) return recorded;
      const code = encodeBase64url(randomBytes(18));
      const put = await store.putInvitation({
        name,
        roles: sorted,
        tenants,
        code_sha256: sha256Hex(code),
        invited_at: at,
        code_expires_at: expires,
        public_jwk: null,
        kid: null,
        enrolled_at: null,
        confirmed_at: null,
        oidc_issuer: binding?.issuer ?? null,
        oidc_subject: binding?.subject ?? null,
      });
      if (!put) return deny('ERR_APPROVAL_INVALID', 'the approver already exists');
      // A new invitation ends every session of the name: a session of an earlier invitation
      // (whoever held its code or its key) never carries over to this one.
      await store.deleteSessionsOf(name);
      return { code, expires_at: expires };
    },

    async confirm(input, actor) {
      const { name, kid } = input;
      if (typeof name !== 'string' || !NAME.test(name) || typeof kid !== 'string' || !TOKEN.test(kid))
        return deny('ERR_APPROVAL_INVALID', 'name and kid are required');
      const p = await store.person(name);
      if (p === undefined || p.public_jwk === null || p.kid === null)
        return deny('ERR_APPROVER_UNKNOWN', 'no enrolled device key for this name');
      // The operator compared the fingerprint out of band: another kid confirms nothing.
      if (!timingSafeEqual(digest(p.kid), digest(kid)))
        return deny('ERR_KEY_INVALID', 'the kid is not the enrolled device key');
      const registered = await approverOf(p);
      if (registered === 'other') return deny('ERR_APPROVAL_INVALID', 'the approver already exists');
      // Registered, and the console's mark lost (a stop in between): only the mark is written.
      if (registered !== undefined) {
        await store.confirm(name, kid, deps.now());
        await store.deleteSessionsOf(name);
        return registered;
      }
      const r = await deps.approvals.registerApprover(
        { name, roles: p.roles, tenants: p.tenants, public_jwk: p.public_jwk },
        actor,
      );
      if (isDeny(r)) return r;
      await store.confirm(name, kid, deps.now());
      // Confirmation ends the person's sessions: approving starts with a sign-in by the confirmed key.
      await store.deleteSessionsOf(name);
      return r;
    },

    async signInWithCode(name, code) {
      if (typeof name !== 'string' || !NAME.test(name) || typeof code !== 'string' || !TOKEN.test(code))
        return unauthenticated('name and code are required');
      // Read and compared first: a wrong guess costs no write.
      const p = await store.person(name);
      const at = deps.now();
      if (
        p?.code_sha256 === null ||
        p === undefined ||
        p.code_expires_at <= at ||
        !timingSafeEqual(
          Buffer.from(p.code_sha256, 'hex'),
          createHash('sha256').update(code, 'utf8').digest(),
        ) ||
        !(await store.useCode(name, sha256Hex(code), at))
      )
        return unauthenticated('the code is unknown, used or expired');
      return newSession(name, 'code');
    },

    challenge(name) {
      if (typeof name !== 'string' || !NAME.test(name))
        return Promise.resolve(unauthenticated('name is required'));
      const id = encodeBase64url(randomBytes(16));
      const exp = String(deps.now() + times.challengeMs);
      // Issued for any name, so the answer does not tell who is enrolled.
      return Promise.resolve({ challenge: `${id}.${exp}.${encodeBase64url(challengeMac(name, id, exp))}` });
    },

    async signInWithKey(name, challenge, signature) {
      if (typeof name !== 'string' || typeof challenge !== 'string' || typeof signature !== 'string')
        return unauthenticated('name, challenge and signature are required');
      const m = CHALLENGE.exec(challenge);
      const mac = m?.[3] === undefined ? undefined : decodeBase64url(m[3]);
      if (
        m?.[1] === undefined ||
        m[2] === undefined ||
        mac === undefined ||
        mac.length !== 32 ||
        !timingSafeEqual(mac, challengeMac(name, m[1], m[2])) ||
        Number(m[2]) <= deps.now()
      )
        return unauthenticated('the challenge is not this gate’s, or expired');
      const p = await store.person(name);
      const key = p === undefined ? undefined : await signInKey(p);
      const sig = decodeBase64url(signature);
      if (key === undefined || sig === undefined || sig.length !== 64)
        return unauthenticated('no device key is enrolled for this name');
      if (!verifyEd25519(key.keyObject, signInInput(name, challenge), sig))
        return unauthenticated('the sign-in signature does not verify');
      // Single use, recorded only once the signature verified (no write for strangers).
      if (!(await store.useChallenge(m[1], Number(m[2]), deps.now())))
        return unauthenticated('the challenge was used already');
      return newSession(name, 'key');
    },

    async enrol(who, jwk) {
      const m = who.session.method;
      if ((m !== 'code' && m !== 'code+oidc') || who.person.public_jwk !== null)
        return deny('ERR_APPROVAL_INVALID', 'a device key is enrolled once, right after the code sign-in');
      // Bound to an OIDC identity: the key is enrolled only in a session that proved it.
      if (awaitsOidc(who))
        return unauthenticated('sign in with your identity provider before enrolling this device');
      const p = who.person;
      let key;
      try {
        key = parsePublicJwk(jwk);
      } catch {
        return deny('ERR_KEY_INVALID', 'public_jwk is not a valid Ed25519 public key');
      }
      const publicJwk = { kty: 'OKP', crv: 'Ed25519', x: key.jwk.x };
      const recorded = await ledger(
        'admin.approver_enrolled',
        { id: who.person.name, role: 'approver' },
        {
          client: who.person.name,
          kid: key.kid,
          public_jwk: publicJwk,
          key_use: 'approval',
          ...(p.oidc_issuer === null || p.oidc_subject === null
            ? {}
            : { oidc: { issuer: p.oidc_issuer, subject: p.oidc_subject } }),
        },
      );
      if (isDeny(recorded)) return recorded;
      if (!(await store.enrol(who.person.name, publicJwk, key.kid, deps.now())))
        return deny('ERR_APPROVAL_INVALID', 'a device key is already enrolled');
      return { kid: key.kid };
    },

    async authenticate(sessionId) {
      if (sessionId === undefined || !TOKEN.test(sessionId)) return unauthenticated('sign in first');
      const idSha = sha256Hex(sessionId);
      const s = await store.session(idSha);
      if (s === undefined) return unauthenticated('the session is unknown');
      const at = deps.now();
      const absolute = s.method.startsWith('code') ? times.enrolMs : times.absoluteMs;
      if (
        at - s.last_seen >= times.idleMs ||
        at - s.created_at >= absolute ||
        at < s.created_at - SESSION_CLOCK_SKEW_MS
      ) {
        await store.deleteSession(idSha);
        return unauthenticated('the session expired: sign in again');
      }
      const person = await store.person(s.name);
      if (person === undefined) return unauthenticated('the person is no longer invited');
      // A session belongs to the invitation (and, signed in by key, to the enrolled key) it was
      // made under: one made before the current invitation, or a key session made before the
      // current key's enrolment (so signed in with an earlier key), is not this person's.
      if (
        s.created_at < person.invited_at ||
        (s.method.startsWith('key') && (person.enrolled_at === null || s.created_at < person.enrolled_at))
      ) {
        await store.deleteSession(idSha);
        return unauthenticated('the session is of an earlier invitation or key: sign in again');
      }
      const rec = await approverOf(person);
      // A removed approver, or a name registered under another key, is signed out.
      if (rec === 'other') {
        await store.deleteSession(idSha);
        return unauthenticated('the approver was removed or holds another key');
      }
      // Idle time is kept to the minute: no durable write for every page of a busy minute.
      if (at - s.last_seen >= 60_000) await store.touchSession(idSha, at);
      return { session: s, person, approver: rec };
    },

    signOut: (sessionId: string) => store.deleteSession(sha256Hex(sessionId)),

    async oidcBegin(who) {
      if (deps.oidc === undefined || !awaitsOidc(who))
        return deny('ERR_OIDC_INVALID', 'this session has no OIDC identity to prove');
      return deps.oidc.begin(who.session.id_sha256);
    },

    async oidcFinish(who, pending, callback) {
      if (deps.oidc === undefined || !awaitsOidc(who))
        return deny('ERR_OIDC_INVALID', 'this session has no OIDC identity to prove');
      const id = await deps.oidc.finish(pending, who.session.id_sha256, callback);
      if (isDeny(id)) return id;
      const p = who.person;
      if (id.issuer !== p.oidc_issuer || id.subject !== p.oidc_subject) {
        // Another person's identity: the code or key of this session is not to be trusted further.
        await store.deleteSession(who.session.id_sha256);
        return unauthenticated('the identity provider signed in another identity than the invitation’s');
      }
      const sid = encodeBase64url(randomBytes(32));
      const s = who.session;
      const method = s.method === 'code' ? 'code+oidc' : 'key+oidc';
      // A new id (no fixation across the step), the same sign-in time (no longer a session).
      const replaced = await store.replaceSession(s.id_sha256, {
        id_sha256: sha256Hex(sid),
        name: s.name,
        method,
        created_at: s.created_at,
        last_seen: deps.now(),
      });
      return replaced ? { id: sid } : unauthenticated('the session ended meanwhile');
    },
  };
  return Object.freeze(service);
}
