import { describe, expect, it } from 'vitest';
import { isHighwaterError } from '../../sidecar/src/errors.js';
import { formatMinAvailable, parseMinAvailable, parseSize } from '../../sidecar/src/config/size.js';

describe('parseSize', () => {
  it.each([
    ['123', 123],
    ['0', 0],
    ['512k', 512 * 1024],
    ['512K', 512 * 1024],
    ['512KiB', 512 * 1024],
    ['100MiB', 100 * 2 ** 20],
    ['100m', 100 * 2 ** 20],
    ['1.5GiB', 1.5 * 2 ** 30],
    ['2g', 2 * 2 ** 30],
    ['1TiB', 2 ** 40],
    [' 64 mib ', 64 * 2 ** 20],
  ])('%s → %d bytes', (text, bytes) => {
    expect(parseSize(text)).toEqual({ kind: 'bytes', bytes });
  });
  it.each([
    ['5%', 5],
    ['2.5%', 2.5],
    ['100%', 100],
  ])('%s → percent', (text, percent) => {
    expect(parseSize(text)).toEqual({ kind: 'percent', percent });
  });
  it.each(['', 'abc', '10MB', '10 GB', '-1', '0%', '101%', '1e3', '5%%', 'MiB', '1.2.3k'])('%j is HW_ERR_CONFIG listing the accepted forms', (text) => {
    try {
      parseSize(text, '--min-available');
      expect.unreachable();
    } catch (e) {
      expect(isHighwaterError(e, 'HW_ERR_CONFIG')).toBe(true);
      expect((e as Error).message).toMatch(/--min-available/);
      expect((e as Error).message).toMatch(/bytes.*KiB\/MiB\/GiB.*%/);
    }
  });
});

describe('parseMinAvailable / formatMinAvailable', () => {
  it('one size or bytes,percent', () => {
    expect(parseMinAvailable('500MiB')).toEqual({ bytes: 500 * 2 ** 20 });
    expect(parseMinAvailable('5%')).toEqual({ percent: 5 });
    expect(parseMinAvailable('104857600,2%')).toEqual({ bytes: 104857600, percent: 2 });
  });
  it('rejects two of a kind and three parts', () => {
    expect(() => parseMinAvailable('1k,2k')).toThrow(/accepted forms/);
    expect(() => parseMinAvailable('1%,2%')).toThrow(/accepted forms/);
    expect(() => parseMinAvailable('1k,2%,3')).toThrow(/accepted forms/);
  });
  it('formats for the shim', () => {
    expect(formatMinAvailable({ bytes: 104857600, percent: 2 })).toBe('104857600,2%');
    expect(formatMinAvailable({ percent: 5 })).toBe('5%');
    expect(formatMinAvailable({})).toBe('0');
  });
});
