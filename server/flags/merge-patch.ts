import { BadRequestError } from '../errors.js';

/**
 * JSON Merge Patch (RFC 7386). Written here rather than taken from npm because it is a dozen
 * lines and it must refuse the member names that reach an object's prototype: a patch such as
 * `{"__proto__": {...}}` is a 400, never a polluted prototype.
 */
const FORBIDDEN_MEMBERS = new Set(['__proto__', 'constructor', 'prototype']);

type Json = null | boolean | number | string | Json[] | { [member: string]: Json };

function isObject(value: unknown): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function applyMergePatch(target: unknown, patch: unknown, path = ''): unknown {
  if (!isObject(patch)) return patch;
  const result: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const member of Object.keys(patch)) {
    if (FORBIDDEN_MEMBERS.has(member)) {
      throw new BadRequestError(`${path}${member}: this member name is not allowed`, { field: `${path}${member}` });
    }
    const value = patch[member];
    if (value === null) {
      delete result[member];
    } else {
      result[member] = applyMergePatch(result[member], value, `${path}${member}.`);
    }
  }
  return result;
}
