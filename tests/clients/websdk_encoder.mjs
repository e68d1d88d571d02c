// The Web SDK's own encoder, run unchanged under Node: the `compress`, `getKeyStr` and `compressToBase64`
// definitions are cut out of the installed clevertap-web-sdk's clevertap.js (the browser bundle cannot load
// without a DOM). Reads one JSON string per line on stdin, writes compressToBase64 of it per line on stdout.
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const source = readFileSync(join(here, 'node_modules', 'clevertap-web-sdk', 'clevertap.js'), 'utf8');
const start = source.indexOf('  const compress = uncompressed =>');
const end = source.indexOf('  const getURLParams = url =>');
if (start < 0 || end < start) {
  throw new Error('the installed clevertap.js no longer defines compress/compressToBase64 where expected');
}
const compressToBase64 = new Function(`${source.slice(start, end)}; return compressToBase64;`)();

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  process.stdout.write(compressToBase64(JSON.parse(line)) + '\n');
}
