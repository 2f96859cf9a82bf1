/**
 * `@peculiar/x509` on first use: with the Reflect polyfill and the dependency injection container
 * it needs, it costs about 0.25 s of CPU to load, at every start of every process that imports the
 * transport (every CLI command included), most of which never read a certificate. Its package is
 * CommonJS only (ES module imports load the same `require` entry), so it loads here synchronously,
 * the polyfill first, and a caller never sees it missing.
 */
import { createRequire } from 'node:module';
import type * as X509 from './x509.js';

/** What `./x509.js` exports. */
export type X509Module = typeof X509;

const require = createRequire(import.meta.url);
let loaded: X509Module | undefined;

/** `@peculiar/x509`, loaded on the first call. */
export function x509(): X509Module {
  if (loaded === undefined) {
    require('reflect-metadata');
    loaded = require('@peculiar/x509') as X509Module;
  }
  return loaded;
}
