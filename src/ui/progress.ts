/**
 * A one-line progress bar on stderr, drawn only when stderr is a terminal (never into a pipe, a log or --json
 * runs): `label [#########           ]  45%  45000/100001`. Redrawn at most every 100 ms.
 */
import type { Writable } from 'node:stream';

export interface ProgressBar {
  update(progress: { done: number; total: number }): void;
  /** Erases the bar (call before printing the result). */
  done(): void;
}

const WIDTH = 30;

export function progressBar(label: string, stream: Writable & { isTTY?: boolean }, enabled: boolean): ProgressBar {
  if (!enabled || !stream.isTTY) return { update() {}, done() {} };
  let last = 0;
  let drawn = false;
  return {
    update({ done, total }) {
      const now = Date.now();
      if (drawn && now - last < 100 && done < total) return;
      last = now;
      drawn = true;
      const share = total > 0 ? Math.min(1, done / total) : 1;
      const filled = Math.round(share * WIDTH);
      stream.write(
        `\r${label} [${'#'.repeat(filled)}${' '.repeat(WIDTH - filled)}] ${String(Math.floor(share * 100)).padStart(3)}%  ${done}/${total}\x1b[K`,
      );
    },
    done() {
      if (drawn) stream.write('\r\x1b[K');
      drawn = false;
    },
  };
}
