/**
 * A key's `allowed_models` (SPEC §4): model ids and `prefix*` patterns (a trailing `*` only; `*` alone is
 * every model). Stored as a JSON array; NULL means no restriction. Compiled once per cached key.
 */
export interface AllowedModels {
  exact: ReadonlySet<string>;
  prefixes: readonly string[];
}

export function compileAllowedModels(patterns: readonly string[]): AllowedModels {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  for (const p of patterns) {
    if (p.endsWith('*')) prefixes.push(p.slice(0, -1));
    else exact.add(p);
  }
  return { exact, prefixes };
}

/** The stored column (a JSON array, or NULL) → the compiled list, or null for "every model". */
export function parseAllowedModels(column: string | null): AllowedModels | null {
  if (column === null) return null;
  const patterns: unknown = JSON.parse(column);
  return compileAllowedModels(Array.isArray(patterns) ? patterns.filter((p): p is string => typeof p === 'string') : []);
}

/** Whether a key with this list may use model `id` (null: no list, every model). */
export function allowsModel(allowed: AllowedModels | null, id: string): boolean {
  if (allowed === null || allowed.exact.has(id)) return true;
  return allowed.prefixes.some((prefix) => id.startsWith(prefix));
}
