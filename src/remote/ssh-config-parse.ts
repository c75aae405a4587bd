/** OpenSSH client config text as lines of keyword and arguments, with where each stands. Pure. */

/** One line of a config file: its keyword (lower case) and arguments, where it stands. */
export interface ConfigLine {
  file: string;
  line: number;
  column: number;
  /** As written, for messages. */
  word: string;
  keyword: string;
  args: string[];
}

/** A config file, its `Include`s read in place (each with the files its patterns matched). */
export interface ConfigFile {
  path: string;
  entries: ConfigEntry[];
}
export type ConfigEntry = { line: ConfigLine; included?: ConfigFile[] };

/** Splits a config text into lines of keyword and arguments, as ssh does (quotes, `=`, `#` comments). */
export function parseConfig(text: string, file: string): ConfigLine[] {
  const out: ConfigLine[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const m = /^[ \t]*([^ \t=#]+)(?:[ \t]*=[ \t]*|[ \t]+|$)(.*)$/.exec(raw);
    if (!m || raw.trimStart().startsWith('#')) return;
    const column = raw.length - raw.trimStart().length + 1;
    out.push({ file, line: i + 1, column, word: m[1]!, keyword: m[1]!.toLowerCase(), args: splitArgs(m[2]!) });
  });
  return out;
}

/** ssh's argv_split: whitespace-separated, "double" or 'single' quoted, a word starting with # ends the line. */
function splitArgs(s: string): string[] {
  const args: string[] = [];
  let cur = '';
  let quote = '';
  let inWord = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === quote) quote = '';
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (c === ' ' || c === '\t') {
      if (inWord) args.push(cur);
      cur = '';
      inWord = false;
    } else if (c === '#' && !inWord) {
      break;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) args.push(cur);
  return args;
}
