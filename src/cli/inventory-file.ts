import { open } from 'node:fs/promises';
import { InventoryError } from '../inventory/errors.js';
import { MAX_INVENTORY_BYTES } from '../inventory/load.js';
import { UsageError } from './flags.js';

/**
 * A file's text, read no further than the inventory size limit: `--inventory /dev/zero` or
 * a huge file stops at the limit instead of eating memory.
 */
export async function readBoundedText(file: string, what = 'inventory'): Promise<string> {
  let buf: Buffer;
  try {
    const fh = await open(file, 'r');
    try {
      const chunks: Buffer[] = [];
      let total = 0;
      for (;;) {
        const chunk = Buffer.alloc(64 * 1024);
        const { bytesRead } = await fh.read(chunk, 0, chunk.length, null);
        if (bytesRead === 0) break;
        chunks.push(chunk.subarray(0, bytesRead));
        total += bytesRead;
        if (total > MAX_INVENTORY_BYTES) {
          throw new InventoryError([
            {
              file,
              line: 1,
              column: 1,
              message: `the file is over ${MAX_INVENTORY_BYTES / 1048576} MiB; an ${what} is at most that`,
              hint: 'Check this is the file you meant; split a fleet that large into several inventories.',
            },
          ]);
        }
      }
      buf = Buffer.concat(chunks);
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (err instanceof InventoryError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new UsageError(`cannot read the ${what} ${file}: ${why}`);
  }
  // Decoding marks bad bytes with U+FFFD; the loader reports where the first one is.
  return new TextDecoder('utf-8', { fatal: false }).decode(buf);
}
