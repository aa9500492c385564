/**
 * Vitest global setup: builds `dist/` once, exactly as `npm start` does (`npm run build`), so that
 * the process tests run what a user runs, and start in a fraction of the time `tsx` takes.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function build(): void {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  execFileSync(
    process.execPath,
    [fileURLToPath(new URL('../../node_modules/typescript/bin/tsc', import.meta.url)), '-p', 'tsconfig.build.json'],
    {
      cwd: root,
      stdio: 'inherit',
    },
  );
}
