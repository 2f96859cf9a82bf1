/**
 * The Execution Layer's cache of upstream OAuth access tokens (docs/adapters.md "`mcp` with
 * `url`"): a token is used until shortly before it expires, not at all without `expires_in`,
 * never after an upstream refused it, and the redactor hears of every token handed out
 * (OE-INV-009/010). A fake clock drives it.
 */
import { describe, expect, it } from 'vitest';
import { createUpstreamTokenCache, TOKEN_RENEW_MARGIN_MS } from '../../src/execution/index.js';

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

describe('upstream token cache', () => {
  it('keeps a token until the renewal margin before expires_in, then asks again', () => {
    const c = clock();
    const cache = createUpstreamTokenCache(c.now);
    cache.put('k', 'tok-a', 300);
    c.advance(300_000 - TOKEN_RENEW_MARGIN_MS - 1);
    expect(cache.get('k')).toBe('tok-a');
    c.advance(1);
    expect(cache.get('k')).toBeUndefined();
  });

  it('a short-lived token is renewed at half its life', () => {
    const c = clock();
    const cache = createUpstreamTokenCache(c.now);
    cache.put('k', 'tok-b', 20);
    c.advance(9_999);
    expect(cache.get('k')).toBe('tok-b');
    c.advance(1);
    expect(cache.get('k')).toBeUndefined();
  });

  it('a token without expires_in is not cached; every token is known to the redactor', () => {
    const cache = createUpstreamTokenCache(clock().now);
    cache.put('k', 'tok-c', undefined);
    expect(cache.get('k')).toBeUndefined();
    cache.put('j', 'tok-d', 300);
    expect(cache.knownValues()).toEqual(['tok-c', 'tok-d']);
  });

  it('a dropped token is not handed out again, but stays known to the redactor', () => {
    const cache = createUpstreamTokenCache(clock().now);
    cache.put('k', 'tok-e', 300);
    cache.put('j', 'tok-f', 300);
    cache.drop('tok-e');
    expect(cache.get('k')).toBeUndefined();
    expect(cache.get('j')).toBe('tok-f');
    expect(cache.knownValues()).toContain('tok-e');
  });

  it('keys are kept apart: another key never sees a token', () => {
    const cache = createUpstreamTokenCache(clock().now);
    cache.put('k', 'tok-g', 300);
    expect(cache.get('other')).toBeUndefined();
  });
});
