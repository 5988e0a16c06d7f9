// ESLint: the recommended rules of ESLint and typescript-eslint; formatting is Prettier's (`npm run lint` runs both).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/', 'bundle/', 'node_modules/', 'integrations/', 'test/php/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      // Escaping control characters is this tool's job (terminal output, audit rows, CSV): its regular expressions
      // match them on purpose.
      'no-control-regex': 'off',
    },
  },
  {
    // Tests and benchmarks: parsed JSON documents are read as `any` (the assertions check their shape), and
    // best-effort clean-up may swallow errors.
    files: ['test/**', 'bench/**', 'scripts/**'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      'no-empty': ['error', { allowEmptyCatch: true }],
    },
  },
);
