// How Pulse writes out a character that would act on its reader rather than read as text (a line
// break in a name, a terminal's escape, a text-direction mark): as `\u{1b}`, in the schema text a
// model reads, the rows it is shown, and what the CLI prints.

/** `char` written out: `\u{` and its code point in hex, then `}`. A replacer for String.replace. */
export const escapedChar = (char: string) => `\\u{${char.codePointAt(0)!.toString(16)}}`;
