/**
 * `@peculiar/x509`, loaded after the Reflect metadata polyfill its dependency injection
 * container (tsyringe) requires (ES modules evaluate imports in order): the eager face, for tests
 * and for the types. The product loads it on first use through `x509-load.ts` (the same
 * CommonJS module, so one instance).
 */
import 'reflect-metadata';

export {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  PemConverter,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509Certificate,
  X509CertificateGenerator,
  X509Crl,
  X509CrlGenerator,
} from '@peculiar/x509';
export type { JsonGeneralName } from '@peculiar/x509';
