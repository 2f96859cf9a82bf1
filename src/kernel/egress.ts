/**
 * Egress allowlist entries (SPEC §6 Redaction and egress, OE-INV-011): one `host:port` per
 * entry, the only form the egress proxy enforces and `policy build` accepts. `host` is a
 * lower-case DNS name, a dotted IPv4 address, or a bracketed IPv6 address; `port` 1..65535.
 * No wildcards, no schemes, no paths: an entry names exactly one destination.
 */
import { BlockList, isIP } from 'node:net';

/** One parsed allowlist entry (or a destination a tool asked for). */
export interface EgressDestination {
  /** Lower-case name, IPv4 dotted quad, or IPv6 without brackets. */
  readonly host: string;
  readonly port: number;
  /** `host:port` as compared (IPv6 bracketed). */
  readonly key: string;
}

const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const NAME = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const IPV6 = /^[0-9a-f:.]{2,45}$/;
const PORT = /^[1-9]\d{0,4}$/;

/** `host` is a literal IP address (IPv4 dotted or IPv6). */
export function isIpLiteral(host: string): boolean {
  return IPV4.test(host) || (host.includes(':') && IPV6.test(host));
}

/**
 * Parses `host:port` (`[v6]:port` for IPv6), host compared case-insensitively; undefined when it
 * is anything else. Used for allowlist entries and for the destinations tools ask for.
 */
export function parseEgressDestination(text: string): EgressDestination | undefined {
  if (typeof text !== 'string' || text.length > 300) return undefined;
  let host: string;
  let port: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return undefined;
    host = text.slice(1, close).toLowerCase();
    port = text.slice(close + 2);
    if (!host.includes(':') || !IPV6.test(host)) return undefined;
  } else {
    const colon = text.lastIndexOf(':');
    if (colon <= 0) return undefined;
    host = text.slice(0, colon).toLowerCase();
    port = text.slice(colon + 1);
    if (!IPV4.test(host) && !(NAME.test(host) && host.length <= 253)) return undefined;
  }
  if (!PORT.test(port) || Number(port) > 65535) return undefined;
  const key = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return Object.freeze({ host, port: Number(port), key });
}

/** Whether `address` (an IP literal) is a loopback address: 127.0.0.0/8 or ::1 (any spelling). */
export function isLoopbackAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return address.startsWith('127.');
  return family === 6 && LOOPBACK6.check(address, 'ipv6');
}

const LOOPBACK6 = new BlockList();
LOOPBACK6.addAddress('::1', 'ipv6');
