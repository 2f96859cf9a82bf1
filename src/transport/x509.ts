/**
 * `@peculiar/x509`, loaded after the Reflect metadata polyfill its dependency injection
 * container (tsyringe) requires. Every module here imports X.509 through this file, so the
 * polyfill is always in place first (ES modules evaluate imports in order).
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
