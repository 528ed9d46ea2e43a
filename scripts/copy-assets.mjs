// tsc compiles only .ts; copy the other files modules read at run time (Lua scripts, page templates).
import { cpSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const ASSET = /\.(lua|html|css|svg)$/;
function copyTree(from, to) {
  for (const name of readdirSync(from)) {
    const source = join(from, name);
    if (statSync(source).isDirectory()) copyTree(source, join(to, name));
    else if (ASSET.test(name)) cpSync(source, join(to, name));
  }
}
for (const dir of ['src', 'workers']) copyTree(dir, join('dist', dir));
