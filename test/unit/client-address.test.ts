import { describe, expect, it } from 'vitest';
import { addressKey } from '../../server/access/client-address.js';

describe('what a limit per client address counts', () => {
  it.each([
    // IPv4 as it is; seen through an IPv6 socket, as itself.
    ['198.51.100.7', '198.51.100.7'],
    ['::ffff:198.51.100.7', '198.51.100.7'],
    ['::FFFF:127.0.0.1', '127.0.0.1'],
    // IPv6 by its /56, however it is written.
    ['2001:db8:7:100::1', '2001:db8:7:100::/56'],
    ['2001:db8:7:1ff:ffff:ffff:ffff:ffff', '2001:db8:7:100::/56'],
    ['2001:0DB8:0007:0142:000a:000b:000c:000d', '2001:db8:7:100::/56'],
    ['2001:db8:7:200::1', '2001:db8:7:200::/56'],
    ['2001:db8::', '2001:db8::/56'],
    ['::1', '::/56'],
    ['fe80::1%eth0', 'fe80::/56'],
    // Not an address (a request whose peer is gone): as it is, never an error.
    ['unknown', 'unknown'],
    ['', ''],
    ['2001:db8:::1', '2001:db8:::1'],
  ])('%j counts as %j', (address, key) => {
    expect(addressKey(address)).toBe(key);
    expect(addressKey(key)).toBe(key); // a key counted again is the same key
  });
});
