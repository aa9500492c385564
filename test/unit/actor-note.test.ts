import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { actorHeader } from '../../protocol/actor-note.js';
import { actorNoteOf, NOTE_MAX_CHARACTERS } from '../../server/flags/actor-note.js';

const codePoints = (text: string) => [...text].length;

describe('an X-Actor note from the admin page or the CLI to the audit', () => {
  it('any note, from the admin page or the CLI (protocol/actor-note.js), goes as a header fetch accepts, and the server reads back exactly what was typed', () => {
    const encode = actorHeader;
    // Any text a person can type: whole graphemes of all of Unicode.
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 60 }), (note) => {
        const header = encode(note);
        expect(() => new Headers({ 'x-actor': header })).not.toThrow(); // fetch's own check (WebIDL ByteString)
        expect(header).toMatch(/^[\x20-\x7e]*$/);
        fc.pre(note === note.trim() && !/\p{Cc}/u.test(note) && codePoints(note) <= NOTE_MAX_CHARACTERS);
        expect(actorNoteOf(header)).toBe(note);
      }),
      { numRuns: 500 },
    );
  });

  it('whatever is sent, the note is what was sent, without control characters, cut at 80 characters and never inside one', () => {
    const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
    const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });
    // Any UTF-16 at all (lone surrogates too), with many characters that a cut could break: pairs,
    // an emoji sequence, a letter and its accent, a flag; through the page's encoding, or raw as curl's UTF-8 bytes.
    const unit = fc.oneof(
      fc.constantFrom('🎉', '👩\u200d💻', 'e\u0301', '🇵🇱', 'Ł', ' ', '\n'),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
    );
    fc.assert(
      fc.property(fc.string({ unit, minLength: 40, maxLength: 120 }), fc.boolean(), (text, raw) => {
        const note = actorNoteOf(raw ? Buffer.from(text, 'utf8').toString('latin1') : actorHeader(text));
        // What the server had to work with: the text as UTF-8 can carry it, without control characters.
        const sent = text
          .replace(LONE_SURROGATE, '\uFFFD')
          .replace(/\p{Cc}/gu, '')
          .trim();
        expect(note).not.toMatch(/\p{Cc}/u);
        expect(codePoints(note)).toBeLessThanOrEqual(NOTE_MAX_CHARACTERS);
        expect(sent.startsWith(note)).toBe(true);
        const ends = new Set([0, ...[...graphemes.segment(sent)].map(({ index, segment }) => index + segment.length)]);
        expect(ends.has(note.length), `cut inside a character at ${note.length}`).toBe(true);
        if (codePoints(sent) <= NOTE_MAX_CHARACTERS) expect(note).toBe(sent);
      }),
      { numRuns: 300 },
    );
  });

  it('sends printable ASCII as typed, and anything that would read as an ext-value as one', () => {
    expect(actorHeader('Maya, on call')).toBe('Maya, on call');
    expect(actorHeader('Łukasz — on call')).toBe("UTF-8''%C5%81ukasz%20%E2%80%94%20on%20call");
    expect(actorHeader("UTF-8''%41")).toBe("UTF-8''UTF-8%27%27%2541");
    expect(actorNoteOf(actorHeader("UTF-8''%41"))).toBe("UTF-8''%41");
  });
});
