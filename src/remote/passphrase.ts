import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import ssh2 from 'ssh2';

/**
 * Passphrases for encrypted identity files, asked once per file before any connection:
 * from PROVISION_SSH_PASSPHRASE, else typed at the terminal (not echoed). Without either,
 * the file is left out and the connection reports the missing passphrase for its host.
 */
export async function passphrasesFor(files: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const file of new Set(files)) {
    let data: Buffer;
    try {
      data = await readFile(file);
    } catch {
      continue; // the connection reports an unreadable key, against each host that uses it
    }
    const parsed = ssh2.utils.parseKey(data);
    if (!(parsed instanceof Error) || !/passphrase/i.test(parsed.message)) continue;
    const fromEnv = process.env.PROVISION_SSH_PASSPHRASE;
    if (fromEnv) out.set(file, fromEnv);
    else if (process.stdin.isTTY && process.stderr.isTTY) out.set(file, await ask(`Passphrase for ${file}: `));
  }
  return out;
}

function ask(prompt: string): Promise<string> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    const write = rl as unknown as { _writeToOutput: (s: string) => void };
    process.stderr.write(prompt);
    write._writeToOutput = () => undefined;
    rl.question('', (answer) => {
      rl.close();
      process.stderr.write('\n');
      resolve(answer);
    });
  });
}
