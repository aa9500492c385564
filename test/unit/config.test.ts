import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../server/config.js';

describe('the settings for clients behind a proxy, and their limits', () => {
  it("TRUST_PROXY takes Express's forms: unset is false; true, false, a hop count, a list of addresses, subnets and names", () => {
    expect(loadConfig({}).trustProxy).toBe(false);
    expect(loadConfig({ TRUST_PROXY: '' }).trustProxy).toBe(false);
    expect(loadConfig({ TRUST_PROXY: 'true' }).trustProxy).toBe(true);
    expect(loadConfig({ TRUST_PROXY: 'false' }).trustProxy).toBe(false);
    // A hop count is a number: as a string, Express would read "1" as an address.
    expect(loadConfig({ TRUST_PROXY: '1' }).trustProxy).toBe(1);
    expect(loadConfig({ TRUST_PROXY: ' loopback, 10.0.0.0/8 ,fd00::/8,uniquelocal ' }).trustProxy).toBe(
      'loopback,10.0.0.0/8,fd00::/8,uniquelocal',
    );
  });

  it('refuses a TRUST_PROXY that is not an address, a subnet or a name, with one line naming it', () => {
    for (const typo of ['lopback', '10.0.0.0/33', 'loopback,,']) {
      expect(() => loadConfig({ TRUST_PROXY: typo })).toThrow(ConfigError);
      expect(() => loadConfig({ TRUST_PROXY: typo })).toThrow(/^Invalid environment variable TRUST_PROXY=/);
    }
  });

  it('MAX_SOCKETS_PER_ADDRESS: 1000 unless set, 0 for no cap, never negative; SIGN_INS_PER_15_MIN: 30 unless set', () => {
    expect(loadConfig({}).maxSocketsPerAddress).toBe(1000);
    expect(loadConfig({ MAX_SOCKETS_PER_ADDRESS: '0' }).maxSocketsPerAddress).toBe(0);
    expect(() => loadConfig({ MAX_SOCKETS_PER_ADDRESS: '-1' })).toThrow(/MAX_SOCKETS_PER_ADDRESS/);
    expect(loadConfig({}).signInLimit).toBe(30);
    expect(() => loadConfig({ SIGN_INS_PER_15_MIN: '0' })).toThrow(/SIGN_INS_PER_15_MIN/);
  });
});
