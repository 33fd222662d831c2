// Lint rules: typescript-eslint's recommended set; `any` needs an eslint-disable comment that says why.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'src/generated/', '.services/', 'node_modules/', '.stryker-tmp/', 'reports/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Pages run in the browser as they are (no build step).
    files: ['src/pages/**/*.js'],
    languageOptions: {
      globals: Object.fromEntries(
        [
          'document',
          'URLSearchParams',
          'history',
          'location',
          'fetch',
          'AbortController',
          'TextDecoderStream',
          'setTimeout',
          'console',
        ].map((name) => [name, 'readonly']),
      ),
    },
  },
);
