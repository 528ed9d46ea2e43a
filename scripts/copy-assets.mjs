// tsc compiles only .ts; copy the other files modules read at run time (Lua scripts, page templates, and
// everything in a static/ folder: the console's stylesheet and script).
import { cpSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';

const ASSET = /\.(lua|html|css|svg|njk)$/;
function copyTree(from, to, everything = false) {
  for (const name of readdirSync(from)) {
    const source = join(from, name);
    if (statSync(source).isDirectory()) copyTree(source, join(to, name), everything || basename(source) === 'static');
    else if (everything || ASSET.test(name)) cpSync(source, join(to, name));
  }
}
for (const dir of ['src', 'workers']) copyTree(dir, join('dist', dir));
