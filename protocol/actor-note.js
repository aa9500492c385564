// @ts-check
/**
 * X-Actor, the note a writer adds beside its token's name in the audit ("Maya, on call"). A header
 * carries bytes, not text: browsers refuse anything beyond Latin-1 in one, and Node hands every
 * header over as Latin-1. So a note that is not printable ASCII travels as RFC 8187's ext-value
 * (`UTF-8''` and percent-encoded UTF-8), which the server decodes (server/flags/actor-note.ts); so
 * does one that would read as an ext-value itself. The admin page and the CLI both send it so.
 * @param {string} note
 */
export function actorHeader(note) {
  if (/^[\x20-\x7e]*$/.test(note) && !/^UTF-8'/i.test(note)) return note;
  // A lone surrogate (half an emoji, pasted) has no UTF-8: encodeURIComponent would throw on it.
  const wellFormed = note.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');
  return `UTF-8''${encodeURIComponent(wellFormed).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`;
}
