/**
 * Vitest global setup: stop at once on a stale build, then migrate one template database per reachable server
 * for the suites to clone (helpers/db-template.ts), dropped again when the run ends.
 */
import type { TestProject } from 'vitest/node';
import { createDbTemplates, type DbTemplates } from '../helpers/db-template.js';
import { staleBuildProblem, ROOT } from './fresh-build.js';

declare module 'vitest' {
  export interface ProvidedContext {
    mail2faDbTemplates: DbTemplates;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const problem = staleBuildProblem(ROOT);
  if (problem) throw new Error(`Stale build: ${problem}. Run \`npm run build\` first (\`npm test\` does).`);
  const { templates, drop } = await createDbTemplates();
  project.provide('mail2faDbTemplates', templates);
  return drop;
}
