/**
 * Text from a host (daemon messages, stderr) as it may be printed: control characters,
 * escape sequences included, shown as \xNN, so that a host cannot clear the operator's
 * screen, move the cursor or fake a line of the report. Idempotent.
 */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const code = c.charCodeAt(0);
    return code > 0xff ? `\\u${code.toString(16).padStart(4, '0')}` : `\\x${code.toString(16).padStart(2, '0')}`;
  });
}

/** The last few meaningful lines of a command's output, on one line, for a message. */
export function tail(text: string, lines = 3): string {
  return printable(
    text
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .slice(-lines)
      .join(' | ')
      .slice(0, 400),
  );
}

/** A list that stays one line: the first few, then how many more. */
export function some(items: readonly string[], max = 5): string {
  return items.length <= max ? items.join(', ') : `${items.slice(0, max - 1).join(', ')} and ${items.length - max + 1} more`;
}
