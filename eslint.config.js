// ESLint configuration (flat config, ESLint 9). `npm run lint` runs it together with `prettier --check .`;
// prettier owns the layout of code (.prettierrc.json), ESLint owns correctness and the folder boundaries.
import { fileURLToPath } from 'node:url';
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import importX, { createNodeResolver } from 'eslint-plugin-import-x';
import globals from 'globals';
import tseslint from 'typescript-eslint';

const ROOT = fileURLToPath(new URL('.', import.meta.url));
const TESTS = ['**/*.test.ts']; // includes *.int.test.ts

// ---------------------------------------------------------------------------------------------------
// Dependency direction between the top-level folders:
//   runtime <- schemas <- services (ingest, aggregator, dashboard) <- tools, stack, testing, demo, bench
// Each folder lists the project folders it may import besides itself; importing any other project folder
// is an error (import-x/no-restricted-paths). deploy/ holds no code (tools/layout.test.ts checks that).
const SERVICES = ['ingest', 'aggregator', 'dashboard'];
const DEV_TOOLS = ['stack', 'testing', 'tools'];
const FOLDERS = ['runtime', 'schemas', 'rights', ...SERVICES, ...DEV_TOOLS, 'demo', 'bench', 'deploy'];

/** @type {Record<string, string[]>} what non-test code of each folder may import */
const MAY_IMPORT = {
  runtime: [],
  schemas: ['runtime'],
  // the key store, envelope encryption and suppression list of people's rights (rights/README.md)
  rights: ['runtime', 'schemas'],
  ingest: ['runtime', 'schemas', 'rights'],
  aggregator: ['runtime', 'schemas'],
  // the dashboard reads the aggregates through the aggregator's query and store code
  dashboard: ['runtime', 'schemas', 'aggregator'],
  stack: ['runtime', 'schemas', 'rights', ...SERVICES, ...DEV_TOOLS],
  testing: ['runtime', 'schemas', 'rights', ...SERVICES, ...DEV_TOOLS],
  tools: ['runtime', 'schemas', 'rights', ...SERVICES, ...DEV_TOOLS],
  // nothing imports demo/ or bench/ but themselves
  demo: ['runtime', 'schemas', 'rights', ...SERVICES, ...DEV_TOOLS],
  bench: ['runtime', 'schemas', 'rights', ...SERVICES, ...DEV_TOOLS],
};

/** @type {Record<string, string[]>} what test files (*.test.ts) of a folder may import on top of MAY_IMPORT */
const TESTS_MAY_ALSO_IMPORT = {
  // shared fixtures and generators live in testing/; a test is no part of its folder's layer
  runtime: ['testing'],
  schemas: ['testing'],
  // the rights tests run ingest against the key store and read the topics back
  rights: ['testing', 'ingest', 'tools'],
  ingest: ['testing'],
  // end-to-end tests of a service start the other services
  aggregator: ['testing', 'ingest'],
  dashboard: ['testing', 'ingest'],
};

/** Services see schemas/ only through its public entry point, schemas/index.ts (tests included). */
const SCHEMAS_ENTRY = 'index.ts';

/** The no-restricted-paths zones for the files of `folder` that may import `allowed`. */
function zones(folder, allowed) {
  const forbidden = FOLDERS.filter((f) => f !== folder && !allowed.includes(f));
  const list = forbidden.map((from) => ({
    target: `./${folder}`,
    from: `./${from}`,
    message: `${folder}/ ${allowed.length ? `may import only ${allowed.join(', ')}` : 'imports nothing of the project'} (dependency direction in eslint.config.js).`,
  }));
  if (SERVICES.includes(folder)) {
    list.push({
      target: `./${folder}`,
      from: './schemas',
      except: [`./${SCHEMAS_ENTRY}`],
      message: `services import schemas/ only through schemas/${SCHEMAS_ENTRY}.`,
    });
  }
  return list;
}

function boundaryRule(folder, allowed) {
  return { 'import-x/no-restricted-paths': ['error', { basePath: ROOT, zones: zones(folder, allowed) }] };
}

const boundaries = Object.entries(MAY_IMPORT).flatMap(([folder, allowed]) => [
  { name: `boundaries/${folder}`, files: [`${folder}/**`], ignores: TESTS, rules: boundaryRule(folder, allowed) },
  {
    name: `boundaries/${folder}/tests`,
    files: TESTS.map((t) => `${folder}/${t}`),
    rules: boundaryRule(folder, [...allowed, ...(TESTS_MAY_ALSO_IMPORT[folder] ?? [])]),
  },
]);

// ---------------------------------------------------------------------------------------------------

export default defineConfig([
  globalIgnores(['node_modules/', 'dist/', 'coverage/', '.local/']),

  // The recommended sets as they are: today they ask for no broad rewrite, so no rule of theirs is off.
  // Not the type-checked sets: building the TypeScript program made a whole run about 2.5 times slower
  // (about 27 s instead of 11 s of CPU here) for little: their promise rules flagged 6 fire-and-forget
  // calls, and their no-unsafe-* rules would need every `any` rewritten first.
  js.configs.recommended,
  tseslint.configs.recommended,

  {
    name: 'project/all',
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    languageOptions: { ecmaVersion: 2023, sourceType: 'module', globals: globals.node },
    plugins: { 'import-x': importX },
    settings: {
      // Imports name files with their .ts extension (tsconfig allowImportingTsExtensions), so plain
      // node resolution finds them; node: builtins and packages resolve from node_modules.
      'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js', '.mjs', '.json'] })],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/extensions': ['.ts', '.js', '.mjs'],
    },
    rules: {
      // No import cycles anywhere. Type-only imports are erased at run time and do not count.
      // Packages are not followed (ignoreExternal): only the project's own graph can hold our cycles.
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-self-import': 'error',

      // An `any` needs `// eslint-disable-next-line @typescript-eslint/no-explicit-any -- <why>`. No TypeScript
      // file is generated today (schemas/fast-codegen.ts builds source text at run time); a generated file
      // would be added to globalIgnores above rather than given exceptions here.
      '@typescript-eslint/no-explicit-any': 'error',
      // `const { dims_tsv: _, ...rest } = row` is how the code drops fields from a copy; the dropped names are unused by design.
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true }],

      // Prettier (printWidth 160) lays out code but cannot shorten comments, strings or long names; this is
      // the hard limit for what it leaves. Long strings, template literals, URLs and regexes are let through.
      'max-len': ['error', { code: 160, tabWidth: 2, ignoreUrls: true, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true }],
    },
  },

  ...boundaries,
  {
    // Root-level files (vitest.config.ts, eslint.config.js) belong to no layer but still never reach into demo/ or bench/.
    name: 'boundaries/root',
    files: ['*.ts', '*.js'],
    rules: {
      'import-x/no-restricted-paths': [
        'error',
        { basePath: ROOT, zones: ['demo', 'bench'].map((f) => ({ target: './*', from: `./${f}`, message: `nothing imports ${f}/ but ${f}/ itself.` })) },
      ],
    },
  },

  {
    // The dashboard's drawing code runs in the browser as a classic script that page.ts inlines into
    // page.html, right after page.html's `const SETTINGS = ...`.
    name: 'project/dashboard-client',
    files: ['dashboard/client.js'],
    languageOptions: { sourceType: 'script', globals: { ...globals.browser, SETTINGS: 'readonly' } },
  },
]);
