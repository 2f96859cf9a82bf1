/**
 * The device key (docs/console.md "Key custody"): a non-extractable WebCrypto Ed25519 key pair
 * made in this browser and kept in its IndexedDB, one per person. The private key can sign here
 * and can never be read out, by the page, by the gate or by anyone who holds the gate's host.
 */
import { canonicalJson, toBase64url } from './statement.js';

const DB = 'failclosed-console';
const STORE = 'device-keys';

/** A device key as kept in IndexedDB. */
export interface DeviceKey {
  readonly name: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  /** The public JWK members the gate registers: `{kty, crv, x}`. */
  readonly jwk: { readonly kty: 'OKP'; readonly crv: 'Ed25519'; readonly x: string };
  /** RFC 7638 thumbprint of the public key: the fingerprint the operator confirms. */
  readonly kid: string;
}

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: 'name' });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error ?? new Error('IndexedDB failed'));
  });
}

async function tx<T>(mode: IDBTransactionMode, fn: (s: IDBObjectStore) => IDBRequest): Promise<T> {
  const db = await open();
  try {
    return await new Promise<T>((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      const req = fn(t.objectStore(STORE));
      t.oncomplete = () => resolve(req.result as T);
      t.onerror = () => reject(t.error ?? new Error('IndexedDB failed'));
      t.onabort = () => reject(t.error ?? new Error('IndexedDB aborted'));
    });
  } finally {
    db.close();
  }
}

/** The device key of `name` in this browser, or undefined. */
export async function loadDeviceKey(name: string): Promise<DeviceKey | undefined> {
  const k = await tx<DeviceKey | undefined>('readonly', (s) => s.get(name));
  return k === undefined || k === null ? undefined : k;
}

/** RFC 7638 thumbprint of an Ed25519 public key (`x` base64url). */
export async function thumbprint(x: string): Promise<string> {
  const text = canonicalJson({ crv: 'Ed25519', kty: 'OKP', x });
  return toBase64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text))));
}

/** Makes and keeps a new non-extractable device key for `name` (replacing an earlier one). */
export async function createDeviceKey(name: string): Promise<DeviceKey> {
  const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify']);
  const exported = await crypto.subtle.exportKey('jwk', pair.publicKey);
  if (typeof exported.x !== 'string') throw new Error('the browser gave no public key');
  const key: DeviceKey = {
    name,
    privateKey: pair.privateKey,
    publicKey: pair.publicKey,
    jwk: { kty: 'OKP', crv: 'Ed25519', x: exported.x },
    kid: await thumbprint(exported.x),
  };
  await tx('readwrite', (s) => s.put(key));
  return key;
}

/** Signs `data` with the device key; base64url. */
export async function signWith(key: DeviceKey, data: Uint8Array<ArrayBuffer>): Promise<string> {
  const sig = await crypto.subtle.sign({ name: 'Ed25519' }, key.privateKey, data);
  return toBase64url(new Uint8Array(sig));
}
