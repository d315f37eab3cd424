// ESLint flat config: JavaScript's and typescript-eslint's recommended rules over the whole tree.
// Formatting is Prettier's job (`npm run format`), so no stylistic rules here.
import js from '@eslint/js'
import tseslint from 'typescript-eslint'
import globals from 'globals'

export default tseslint.config(
  { ignores: ['node_modules/', '.stack/', 'test/artifacts/', 'dist/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: globals.node },
    rules: {
      // Prettier wraps code at 140 columns but not comments or literals: comments must fit too
      // (long strings, templates and regular expressions may not be splittable).
      'max-len': ['error', { code: 140, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true, ignoreUrls: true }],
      // Input validation matches control characters on purpose (ids, file names, JSON text).
      'no-control-regex': 'off',
      // `_`-prefixed names mark a parameter or binding kept on purpose (a signature, a skipped element).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  // Run by mongosh, whose shell provides these.
  { files: ['deploy/mongo/*.js'], languageOptions: { globals: { db: 'readonly', print: 'readonly', quit: 'readonly' } } },
)
