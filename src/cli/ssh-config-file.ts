import { readdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { InventoryError } from '../inventory/errors.js';
import { type ConfigFile, type ConfigLine, parseConfig } from '../remote/ssh-config-parse.js';
import { readBoundedText } from './inventory-file.js';

// ssh's limit on nested Includes (readconf.c READCONF_MAX_DEPTH).
const MAX_DEPTH = 16;

/**
 * An OpenSSH client config and every file its `Include` lines name, read as ssh reads them: a
 * relative path is under ~/.ssh, `~` is the home folder, `*` and `?` match file names (sorted),
 * a pattern that matches nothing is skipped. Only reads files: nothing in them is run.
 */
export async function readSshConfig(path: string, home = homedir()): Promise<ConfigFile> {
  const read = async (file: string, depth: number, from?: ConfigLine): Promise<ConfigFile> => {
    if (depth > MAX_DEPTH) {
      throw new InventoryError([
        {
          file: from!.file,
          line: from!.line,
          column: from!.column,
          message: `Include nests deeper than ${MAX_DEPTH} files`,
          hint: 'An Include loop? Check the files it names.',
        },
      ]);
    }
    const text = await readBoundedText(file, 'ssh config');
    const entries: ConfigFile['entries'] = [];
    for (const line of parseConfig(text, file)) {
      if (line.keyword !== 'include') {
        entries.push({ line });
        continue;
      }
      const included: ConfigFile[] = [];
      for (const pattern of line.args) {
        const full = pattern.startsWith('~') ? join(home, pattern.slice(1)) : isAbsolute(pattern) ? pattern : join(home, '.ssh', pattern);
        for (const f of await expand(full)) included.push(await read(f, depth + 1, line));
      }
      entries.push({ line, included });
    }
    return { path: file, entries };
  };
  return read(path, 0);
}

/** The files a path with `*` or `?` in its components names, sorted as glob(3) does. */
async function expand(path: string): Promise<string[]> {
  if (!/[*?]/.test(path)) return (await exists(path)) ? [path] : [];
  const parents = /[*?]/.test(dirname(path)) ? await expand(dirname(path)) : [dirname(path)];
  const re = new RegExp(
    `^${basename(path)
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '[^/]*')
      .replace(/\?/g, '[^/]')}$`,
  );
  const out: string[] = [];
  for (const dir of parents) {
    const names = await readdir(dir).catch(() => [] as string[]);
    out.push(
      ...names
        .filter((n) => re.test(n) && !(n.startsWith('.') && !basename(path).startsWith('.')))
        .sort()
        .map((n) => join(dir, n)),
    );
  }
  return out;
}

async function exists(path: string): Promise<boolean> {
  return readdir(dirname(path)).then(
    (names) => names.includes(basename(path)),
    () => false,
  );
}
