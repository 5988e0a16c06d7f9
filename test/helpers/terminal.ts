/** Runs the BUILT binary in a real pseudo-terminal (node-pty), answering prompts as they appear on the screen. */
import pty from 'node-pty';
import { BIN } from './cli.js';

/** Each answer is typed once its pattern is on the screen (answers in order; a function is called at that moment). */
export function runInTerminal(
  args: string[],
  env: Record<string, string>,
  answers: Array<[RegExp, string | (() => string)]>,
  timeoutMs = 30_000,
  cols = 160,
): Promise<{ code: number; screen: string }> {
  return new Promise((resolve, reject) => {
    const term = pty.spawn(process.execPath, [BIN, ...args], {
      name: 'xterm-256color',
      cols,
      rows: 40,
      env: { ...process.env, ...env, TERM: 'xterm-256color' } as Record<string, string>,
    });
    let screen = '';
    let next = 0;
    const timer = setTimeout(() => {
      term.kill();
      reject(new Error(`terminal timed out; screen: ${JSON.stringify(screen.slice(-400))}`));
    }, timeoutMs);
    term.onData((d) => {
      screen += d;
      const answer = answers[next];
      if (answer && answer[0].test(screen)) {
        next++;
        term.write(typeof answer[1] === 'function' ? answer[1]() : answer[1]);
      }
    });
    term.onExit(({ exitCode }) => {
      clearTimeout(timer);
      resolve({ code: exitCode, screen });
    });
  });
}
