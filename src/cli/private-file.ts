import { randomBytes } from 'node:crypto';
import { type FileHandle, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Writes `text` to `path` readable by the owner alone (0600), whatever was there: a new file
 * is made beside it (O_EXCL, so never through a symlink) and renamed over the path, which
 * replaces a symlink itself rather than the file it points at.
 */
export async function writePrivateFile(path: string, text: string): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(temp, 'wx', 0o600);
  try {
    await fh.writeFile(text);
    await fh.chmod(0o600);
    await fh.close();
    await rename(temp, path);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw err;
  }
}

/**
 * Creates `path` empty, readable by the owner alone, the same way as writePrivateFile, and
 * returns it open for appending.
 */
export async function openPrivateFile(path: string): Promise<FileHandle> {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(temp, 'wx', 0o600);
  try {
    await fh.chmod(0o600);
    await rename(temp, path);
    return fh;
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw err;
  }
}
