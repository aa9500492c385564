/**
 * X-Actor, the note a writer adds beside its token's name in the audit ("Maya, on call"). A
 * header carries bytes, not text: browsers refuse to send anything beyond Latin-1 in one, and
 * Node hands every header over as Latin-1. So a note that is not plain ASCII travels as RFC
 * 8187's ext-value (`UTF-8''` then percent-encoded UTF-8), which the admin page and the CLI send
 * (protocol/actor-note.js); and a raw UTF-8 header, as curl sends what was typed, is read as the
 * UTF-8 it is.
 */

/** The longest note the audit keeps, in characters. */
export const NOTE_MAX_CHARACTERS = 80;

/** RFC 8187 ext-value in UTF-8: charset, an optional language, then attr-chars and %XX. */
const EXT_VALUE = /^UTF-8'[A-Za-z0-9-]*'((?:%[0-9A-Fa-f]{2}|[A-Za-z0-9!#$&+\-.^_`|~])*)$/i;
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });
const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/** The text an X-Actor header carries: an ext-value decoded, raw UTF-8 bytes read as UTF-8, anything else as sent. */
function textOf(header: string): string {
  const ext = EXT_VALUE.exec(header);
  if (ext) {
    try {
      return decodeURIComponent(ext[1]!);
    } catch {
      // Percent-encoded bytes that are not UTF-8: kept as sent rather than refusing the write.
      return header;
    }
  }
  if (/[\x80-\xff]/.test(header)) {
    try {
      return STRICT_UTF8.decode(Buffer.from(header, 'latin1'));
    } catch {
      // Not UTF-8: Latin-1 (a lone é), which is what Node read it as.
    }
  }
  return header;
}

/**
 * `text` cut to `max` characters (code points, so never half of a surrogate pair), and back to
 * the last whole grapheme when the cut falls inside one (an accent after its letter, a flag, a
 * family emoji), so that no broken character ends the note.
 */
export function cutAt(text: string, max: number): string {
  let end = 0;
  let count = 0;
  for (const char of text) {
    if (count === max) break;
    end += char.length;
    count++;
  }
  if (end === text.length) return text;
  let whole = 0;
  for (const { index, segment } of graphemes.segment(text)) {
    if (index + segment.length > end) break;
    whole = index + segment.length;
  }
  return text.slice(0, whole);
}

/** The note an X-Actor header adds to the audit: decoded, without control characters, trimmed, 80 characters at most. */
export function actorNoteOf(header: string | undefined): string {
  if (!header) return '';
  return cutAt(
    textOf(header)
      .replace(/\p{Cc}/gu, '')
      .trim(),
    NOTE_MAX_CHARACTERS,
  ).trimEnd();
}
