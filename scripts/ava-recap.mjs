// Runs ava as it is, and repeats at the very end what went wrong outside the tests. ava prints an uncaught
// exception, an unhandled rejection, a timeout or a test file that died where it happens, among hundreds of
// passing lines, and a CI log is often read from its tail only: the recap puts each such report where that
// reader looks. (A failed test ava already repeats in its own closing summary.)
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { stripVTControlCharacters } from 'node:util';

const REPORT_START =
  /^\s*(Uncaught exception in |Unhandled rejection in |✘ Timed out while running tests|✘ Internal error|✘ \S+ exited (due to|with a non-zero))/;
const REPORT_END = /^\s*(✔|✘|─)/;
const MAX_REPORT_LINES = 60;

// ava's output goes through a pipe here: in a terminal, keep its colours as it would have them
const colours = process.stdout.isTTY ? { FORCE_COLOR: '1' } : {};
const ava = spawn(process.execPath, ['node_modules/ava/entrypoints/cli.mjs', ...process.argv.slice(2)], {
  stdio: ['inherit', 'pipe', 'inherit'],
  env: { ...process.env, ...colours },
});

const reports = [];
let current;
createInterface({ input: ava.stdout }).on('line', (line) => {
  process.stdout.write(`${line}\n`);
  const text = stripVTControlCharacters(line);
  if (REPORT_START.test(text)) {
    current = [line];
    reports.push(current);
  } else if (current && (REPORT_END.test(text) || current.length >= MAX_REPORT_LINES)) {
    current = undefined;
  } else if (current) {
    current.push(line);
  }
});

ava.on('close', (code, signal) => {
  if (reports.length > 0) {
    process.stdout.write('\nRecap of what ava reported outside the tests (as printed above):\n\n');
    for (const report of reports) process.stdout.write(`${report.join('\n').trimEnd()}\n\n`);
  }
  process.exitCode = code ?? (signal ? 1 : 0);
});
