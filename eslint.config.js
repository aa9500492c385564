// @ts-check
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/**
 * typescript-eslint's type-checked rules over the whole tree: the server, the tests, the
 * benchmarks and their harness against tsconfig.json; the pages and what they share with the
 * server against tsconfig.public.json (browser JavaScript, checked by its JSDoc types). Formatting
 * is Prettier's alone (eslint-config-prettier turns off the rules it owns).
 */
export default tseslint.config(
  { ignores: ['dist/', 'reports/', '.stryker-tmp/', '.ci/node26/', 'bench/results/', 'node_modules/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
      // Express 5 sends a rejected handler to the error handler: an async handler is the idiom.
      '@typescript-eslint/no-misused-promises': [
        'error',
        { checksVoidReturn: { arguments: false, attributes: false } },
      ],
      // An async method that does not await implements a Promise-returning interface (a store in
      // memory beside one in Redis): that is the point, not a mistake.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    files: ['public/**/*.js', 'public/**/*.d.ts', 'protocol/**/*.js'],
    languageOptions: {
      globals: globals.browser,
      parserOptions: { projectService: false, project: './tsconfig.public.json', tsconfigRootDir: import.meta.dirname },
    },
    // The pages are JavaScript typed by JSDoc (tsc checks them: tsconfig.public.json). A JSDoc cast
    // is a parenthesized comment that these rules cannot see, so they would flag every JSON.parse.
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  {
    // A server function that outgrows a screen is doing two things: split it, or make it a class.
    files: ['server/**/*.ts'],
    rules: { 'max-lines-per-function': ['error', { max: 80 }] },
  },
  { files: ['**/*.mjs', 'eslint.config.js'], ...tseslint.configs.disableTypeChecked },
  { files: ['**/*.mjs', 'eslint.config.js'], languageOptions: { globals: globals.node } },
  {
    // Tests and benchmarks reach into results and fixtures whose shape they check themselves.
    files: ['test/**/*.ts', 'bench/**/*.ts', 'testing/**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
  prettier,
);
