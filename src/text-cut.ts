// Text from outside (a database's error, a cell a check printed, a user's statement) cut to a
// size Pulse keeps.

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;

/** The first `maxChars` characters of `text` (one fewer rather than half of a character beyond
 * the BMP, an emoji: half of one would make the JSON it goes into, an alert or a notification,
 * one the store refuses), as a string of its own. V8 keeps a slice of a long string as a view of
 * the whole: the audit buffer, keeping 4,096 characters of each 1,000,000-character statement
 * while the store was away, held 3 MB for each. */
export function prefixOf(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  const end = isHighSurrogate(text.charCodeAt(maxChars - 1)) ? maxChars - 1 : maxChars;
  return Buffer.from(text.slice(0, end), "utf16le").toString("utf16le");
}

/** `text` cut to `maxChars`, saying how much was left out (see prefixOf). */
export function cutText(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  const kept = prefixOf(text, maxChars);
  return `${kept}… (${text.length - kept.length} more characters)`;
}
