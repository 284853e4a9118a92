// Text from outside (a database's error, a cell a check printed) cut to a size Pulse keeps.

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;

/** `text` cut to `maxChars`, saying how much was left out. Never between the two halves of a
 * character beyond the BMP (an emoji): half of one would make the JSON it goes into (an alert, a
 * notification) one the store refuses. */
export function cutText(text: string, maxChars: number): string {
  if (text.length <= maxChars) return text;
  const end = isHighSurrogate(text.charCodeAt(maxChars - 1)) ? maxChars - 1 : maxChars;
  return `${text.slice(0, end)}… (${text.length - end} more characters)`;
}
