/**
 * Typed configuration from environment variables, read once at start.
 *
 * Each service declares its settings (name, type, default, doc). `loadConfig` parses them, and rejects
 * any variable that carries one of the service's prefixes but is not declared: a typo such as
 * `INGEST_MAX_BODY_BYTE=1` must stop the process with one clear line, not be ignored silently.
 * The same declarations generate the README configuration table, so docs cannot drift from code.
 */

import { CodedError } from './errors.ts';

export type SettingKind = 'string' | 'int' | 'number' | 'bool' | 'enum' | 'list' | 'url';

interface BaseSetting<T> {
  /** What it does and why one would change it; shown in the README table. */
  doc: string;
  /** Value when the variable is unset; omit to make the setting required. */
  default?: T;
  /** A secret: its value never appears in errors, logs or the docs table. */
  secret?: boolean;
}
export interface StringSetting extends BaseSetting<string> {
  kind: 'string';
  pattern?: RegExp;
}
export interface UrlSetting extends BaseSetting<string> {
  kind: 'url';
}
export interface IntSetting extends BaseSetting<number> {
  kind: 'int';
  min?: number;
  max?: number;
}
export interface NumberSetting extends BaseSetting<number> {
  kind: 'number';
  min?: number;
  max?: number;
}
export interface BoolSetting extends BaseSetting<boolean> {
  kind: 'bool';
}
export interface EnumSetting<E extends string = string> extends BaseSetting<E> {
  kind: 'enum';
  values: readonly E[];
}
export interface ListSetting extends BaseSetting<string[]> {
  kind: 'list';
  minItems?: number;
}

export type Setting = StringSetting | UrlSetting | IntSetting | NumberSetting | BoolSetting | EnumSetting | ListSetting;

export type SettingsSpec = Record<string, Setting>;

type ValueOf<S extends Setting> =
  S extends EnumSetting<infer E>
    ? E
    : S extends IntSetting | NumberSetting
      ? number
      : S extends BoolSetting
        ? boolean
        : S extends ListSetting
          ? string[]
          : string;

/** The typed config object for a spec: keys are the variable names. */
export type ConfigOf<S extends SettingsSpec> = { readonly [K in keyof S]: ValueOf<S[K]> };

export class ConfigError extends CodedError<'CONFIG_INVALID'> {
  override readonly name: string = 'ConfigError';
  constructor(readonly problems: string[]) {
    super('CONFIG_INVALID', `invalid configuration: ${problems.join('; ')}`);
  }
}

/** Helper so `spec` keeps its literal types (enum values) while being checked against `Setting`. */
export function defineSettings<S extends SettingsSpec>(spec: S): S {
  return spec;
}

function parseOne(name: string, s: Setting, raw: string): { ok: true; value: unknown } | { ok: false; problem: string } {
  const shown = s.secret ? '(secret value hidden)' : JSON.stringify(raw);
  const bad = (expect: string) => ({ ok: false as const, problem: `${name}=${shown}: expected ${expect}` });
  switch (s.kind) {
    case 'string':
      if (s.pattern && !s.pattern.test(raw)) return bad(`a value matching ${s.pattern}`);
      return { ok: true, value: raw };
    case 'url':
      try {
        new URL(raw);
        return { ok: true, value: raw };
      } catch {
        return bad('a URL such as http://host:port');
      }
    case 'int':
    case 'number': {
      const t = raw.trim();
      const v = Number(t);
      if (t === '' || !Number.isFinite(v) || (s.kind === 'int' && !Number.isInteger(v))) return bad(s.kind === 'int' ? 'an integer' : 'a number');
      if (s.min !== undefined && v < s.min) return bad(`a value >= ${s.min}`);
      if (s.max !== undefined && v > s.max) return bad(`a value <= ${s.max}`);
      return { ok: true, value: v };
    }
    case 'bool':
      if (/^(1|true|yes|on)$/i.test(raw)) return { ok: true, value: true };
      if (/^(0|false|no|off)$/i.test(raw)) return { ok: true, value: false };
      return bad('true or false');
    case 'enum':
      if (!s.values.includes(raw)) return bad(`one of ${s.values.join(', ')}`);
      return { ok: true, value: raw };
    case 'list': {
      const items = raw
        .split(',')
        .map((x) => x.trim())
        .filter((x) => x.length > 0);
      if (s.minItems !== undefined && items.length < s.minItems) return bad(`a comma-separated list of at least ${s.minItems} item(s)`);
      return { ok: true, value: items };
    }
  }
}

/**
 * Parse `env` against one or more specs. `prefixes` are the variable-name prefixes this service owns:
 * any variable with such a prefix that no spec declares is an error.
 */
export function loadConfig<S extends SettingsSpec>(spec: S, opts: { prefixes: readonly string[]; env?: NodeJS.ProcessEnv }): ConfigOf<S> {
  const env = opts.env ?? process.env;
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const [name, s] of Object.entries(spec)) {
    const raw = env[name];
    if (raw === undefined || raw === '') {
      if (s.default === undefined) problems.push(`${name} is required: ${s.doc}`);
      else out[name] = s.default;
      continue;
    }
    const r = parseOne(name, s, raw);
    if (r.ok) out[name] = r.value;
    else problems.push(r.problem);
  }
  for (const name of Object.keys(env)) {
    if (opts.prefixes.some((p) => name.startsWith(p)) && !(name in spec)) {
      const near = nearest(name, Object.keys(spec));
      problems.push(`${name} is not a known setting${near ? ` (did you mean ${near}?)` : ''}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out as ConfigOf<S>;
}

function nearest(name: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(name, k);
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  return bestD <= 3 ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** Markdown table of a spec, for the README (a test keeps the README current). */
export function settingsTable(spec: SettingsSpec): string {
  const rows = Object.entries(spec).map(([name, s]) => {
    let def: string;
    if (s.default === undefined) def = '*required*';
    else if (s.secret) def = '*(secret)*';
    else if (Array.isArray(s.default)) def = s.default.length ? `\`${s.default.join(',')}\`` : '*(empty)*';
    else def = s.default === '' ? '*(empty)*' : `\`${String(s.default)}\``;
    const type = s.kind === 'enum' ? s.values.map((v) => `\`${v}\``).join(' \\| ') : s.kind;
    return `| \`${name}\` | ${type} | ${def} | ${s.doc.replace(/\|/g, '\\|')} |`;
  });
  return ['| Variable | Type | Default | Meaning |', '|---|---|---|---|', ...rows].join('\n');
}
