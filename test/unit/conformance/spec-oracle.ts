/**
 * The vendored Sage specs (`test/fixtures/sage/spec/`) as test oracles: load them, and check a value against a Swagger 2
 * definition. Only what Sage's generated Swagger uses is supported (type, $ref, items, properties). Documented wire
 * exceptions, each named where it applies:
 * - `null` for any property (Sage sends nulls; Swagger 2 has no `nullable`);
 * - numbers as decimal strings (`"2000.0"`: Sage's guides; the Swagger types them as numbers);
 * - `$path` on any entity (every item in Sage's own examples has one; the user/business spec's definitions omit it).
 */
import { readFileSync } from 'node:fs';

const SPEC_DIR = new URL('../../fixtures/sage/spec/', import.meta.url);

export function loadSpec<T = any>(file: string): T {
  return JSON.parse(readFileSync(new URL(file, SPEC_DIR), 'utf8')) as T;
}

type Schema = { type?: string; $ref?: string; items?: Schema; properties?: Record<string, Schema>; format?: string };

const DECIMAL_STRING = /^-?\d+(\.\d+)?$/;

/** Problems of `value` against `schema` (empty = valid). Unknown properties are problems: Sage would not send them. */
export function validate(
  spec: { definitions: Record<string, Schema> },
  schema: Schema,
  value: unknown,
  path = '$',
): string[] {
  if (value === null) return [];
  if (schema.$ref) {
    const name = schema.$ref.split('/').pop()!;
    const def = spec.definitions[name];
    if (!def) return [`${path}: definition ${name} not vendored`];
    return validate(spec, def, value, path);
  }
  const type = schema.type ?? (schema.properties ? 'object' : undefined);
  switch (type) {
    case undefined:
      return [];
    case 'string':
      if (typeof value !== 'string') return [`${path}: expected string, got ${typeof value}`];
      if (
        schema.format === 'date-time' &&
        !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(value)
      )
        return [`${path}: not a date-time with zone: ${value}`];
      if (schema.format === 'date' && !/^\d{4}-\d{2}-\d{2}$/.test(value)) return [`${path}: not a date: ${value}`];
      return [];
    case 'integer':
      return Number.isInteger(value) ? [] : [`${path}: expected integer, got ${JSON.stringify(value)}`];
    case 'number':
      // Wire exception: Sage writes decimals as strings ("1500.0") although the Swagger types them as numbers.
      return typeof value === 'number' || (typeof value === 'string' && DECIMAL_STRING.test(value))
        ? []
        : [`${path}: expected number, got ${JSON.stringify(value)}`];
    case 'boolean':
      return typeof value === 'boolean' ? [] : [`${path}: expected boolean, got ${JSON.stringify(value)}`];
    case 'array':
      if (!Array.isArray(value)) return [`${path}: expected array`];
      return value.flatMap((v, i) => (schema.items ? validate(spec, schema.items, v, `${path}[${i}]`) : []));
    case 'object': {
      if (typeof value !== 'object' || Array.isArray(value)) return [`${path}: expected object`];
      if (!schema.properties) return [];
      const out: string[] = [];
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        const prop = schema.properties[k];
        if (!prop && k === '$path') {
          if (typeof v !== 'string') out.push(`${path}.${k}: expected string`);
        } else if (!prop) out.push(`${path}.${k}: not in the spec`);
        else out.push(...validate(spec, prop, v, `${path}.${k}`));
      }
      return out;
    }
    default:
      return [`${path}: unsupported schema type ${type}`];
  }
}

/** Swagger 2 `parameters` of one GET path, by name. */
export function getParameters(
  spec: any,
  path: string,
): Map<string, { in: string; type?: string; description?: string; minimum?: number; maximum?: number }> {
  const op = spec.paths[path]?.get;
  if (!op) throw new Error(`no GET ${path} in the vendored spec`);
  return new Map((op.parameters ?? []).map((p: any) => [p.name, p]));
}
