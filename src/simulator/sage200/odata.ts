/**
 * The OData subset Sage 200 accepts on list endpoints: `$filter` (eq ne gt ge lt le, and, or, brackets, contains /
 * startswith / endswith; datetimes unquoted and ending in `Z`), `$orderby` (comma list, asc/desc), `$top`, `$skip`
 * (only with `$orderby`), `$select`, `$expand`. Errors are thrown as ODataError with a message meant for a developer.
 */

export class ODataError extends Error {}

export type FieldType = 'number' | 'string' | 'datetime' | 'boolean';
export type Row = Record<string, unknown>;
export type Predicate = (row: Row) => boolean;

type Token = { t: 'id' | 'op' | 'num' | 'str' | 'date' | 'lp' | 'rp' | 'comma' | 'bool' | 'null'; v: string };

const OPS = new Set(['eq', 'ne', 'gt', 'ge', 'lt', 'le']);

function tokenize(s: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (c === ' ') {
      i++;
      continue;
    }
    if (c === '(' || c === ')' || c === ',') {
      out.push({ t: c === '(' ? 'lp' : c === ')' ? 'rp' : 'comma', v: c });
      i++;
    } else if (c === "'") {
      let j = i + 1;
      let v = '';
      for (;;) {
        if (j >= s.length) throw new ODataError(`Unterminated string literal at position ${i} in $filter.`);
        if (s[j] === "'") {
          if (s[j + 1] === "'") {
            v += "'";
            j += 2;
            continue;
          }
          break;
        }
        v += s[j];
        j++;
      }
      out.push({ t: 'str', v });
      i = j + 1;
    } else {
      const m = /^[^\s(),']+/.exec(s.slice(i));
      const word = m![0];
      i += word.length;
      if (/^\d{4}-\d{2}-\d{2}T/.test(word)) out.push({ t: 'date', v: word });
      else if (/^-?\d+(\.\d+)?$/.test(word)) out.push({ t: 'num', v: word });
      else if (
        OPS.has(word.toLowerCase()) ||
        word.toLowerCase() === 'and' ||
        word.toLowerCase() === 'or' ||
        word.toLowerCase() === 'not'
      )
        out.push({ t: 'op', v: word.toLowerCase() });
      else if (word === 'true' || word === 'false') out.push({ t: 'bool', v: word });
      else if (word === 'null') out.push({ t: 'null', v: word });
      else out.push({ t: 'id', v: word });
    }
  }
  return out;
}

function parseDateLiteral(v: string, field: string): number {
  if (!v.endsWith('Z'))
    throw new ODataError(
      `The datetime value '${v}' for '${field}' must be in UTC and end in 'Z', e.g. 2016-02-24T09:52:11.452Z.`,
    );
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new ODataError(`'${v}' is not a valid datetime.`);
  return t;
}

export function parseFilter(input: string, fields: Record<string, FieldType>): Predicate {
  const toks = tokenize(input);
  let pos = 0;
  const peek = () => toks[pos];
  const next = () => {
    const t = toks[pos++];
    if (!t) throw new ODataError('Unexpected end of $filter expression.');
    return t;
  };

  function orExpr(): Predicate {
    let left = andExpr();
    while (peek()?.t === 'op' && peek()!.v === 'or') {
      pos++;
      const l = left;
      const r = andExpr();
      left = (row) => l(row) || r(row);
    }
    return left;
  }
  function andExpr(): Predicate {
    let left = unary();
    while (peek()?.t === 'op' && peek()!.v === 'and') {
      pos++;
      const l = left;
      const r = unary();
      left = (row) => l(row) && r(row);
    }
    return left;
  }
  function unary(): Predicate {
    if (peek()?.t === 'op' && peek()!.v === 'not') {
      pos++;
      const inner = unary();
      return (row) => !inner(row);
    }
    return primary();
  }
  function fieldType(name: string): FieldType {
    const t = fields[name];
    if (!t) throw new ODataError(`Could not find a property named '${name}' on type 'Customer'.`);
    return t;
  }
  function primary(): Predicate {
    const t = next();
    if (t.t === 'lp') {
      const e = orExpr();
      if (next().t !== 'rp') throw new ODataError("Expected ')' in $filter.");
      return e;
    }
    if (t.t !== 'id') throw new ODataError(`Syntax error at '${t.v}' in $filter.`);
    const fn = t.v.toLowerCase();
    if ((fn === 'contains' || fn === 'startswith' || fn === 'endswith') && peek()?.t === 'lp') {
      pos++;
      const f = next();
      if (f.t !== 'id' || fieldType(f.v) !== 'string')
        throw new ODataError(`${fn} needs a string property as its first argument.`);
      if (next().t !== 'comma') throw new ODataError(`Expected ',' in ${fn}().`);
      const lit = next();
      if (lit.t !== 'str') throw new ODataError(`${fn} needs a quoted string as its second argument.`);
      if (next().t !== 'rp') throw new ODataError(`Expected ')' after ${fn}().`);
      const needle = lit.v.toLowerCase();
      return (row) => {
        const v = String(row[f.v] ?? '').toLowerCase();
        return fn === 'contains' ? v.includes(needle) : fn === 'startswith' ? v.startsWith(needle) : v.endsWith(needle);
      };
    }
    const field = t.v;
    const type = fieldType(field);
    const op = next();
    if (op.t !== 'op' || !OPS.has(op.v))
      throw new ODataError(`Expected a comparison operator (eq, ne, gt, ge, lt, le) after '${field}'.`);
    const lit = next();
    let value: unknown;
    if (type === 'datetime') {
      if (lit.t === 'str')
        throw new ODataError(`Datetime values are written without quotes, e.g. ${field} gt 2016-02-24T09:52:11.452Z.`);
      if (lit.t !== 'date') throw new ODataError(`'${lit.v}' is not a datetime value for '${field}'.`);
      value = parseDateLiteral(lit.v, field);
    } else if (type === 'number') {
      if (lit.t !== 'num') throw new ODataError(`'${lit.v}' is not a number for '${field}'.`);
      value = Number(lit.v);
    } else if (type === 'boolean') {
      if (lit.t !== 'bool') throw new ODataError(`'${lit.v}' is not a boolean for '${field}'.`);
      value = lit.v === 'true';
    } else {
      if (lit.t !== 'str' && lit.t !== 'null')
        throw new ODataError(`String values must be in single quotes: ${field} ${op.v} '${lit.v}'.`);
      value = lit.t === 'null' ? null : lit.v;
    }
    // Rows carry datetimes as epoch milliseconds.
    const get = (row: Row) => row[field];
    const cmp = (a: unknown, b: unknown): number => {
      if (a === b) return 0;
      if (a === null || a === undefined) return -1;
      if (b === null || b === undefined) return 1;
      return (a as number | string) < (b as number | string) ? -1 : 1;
    };
    switch (op.v) {
      case 'eq':
        return (row) => cmp(get(row), value) === 0;
      case 'ne':
        return (row) => cmp(get(row), value) !== 0;
      case 'gt':
        return (row) => cmp(get(row), value) > 0;
      case 'ge':
        return (row) => cmp(get(row), value) >= 0;
      case 'lt':
        return (row) => cmp(get(row), value) < 0;
      default:
        return (row) => cmp(get(row), value) <= 0;
    }
  }

  if (toks.length === 0) throw new ODataError('$filter is empty.');
  const pred = orExpr();
  if (pos < toks.length) throw new ODataError(`Syntax error at '${toks[pos]!.v}' in $filter.`);
  return pred;
}

export interface OrderTerm {
  field: string;
  desc: boolean;
}

export function parseOrderBy(input: string, fields: Record<string, FieldType>): OrderTerm[] {
  const terms = input.split(',').map((s) => s.trim());
  return terms.map((term) => {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:\s+(asc|desc))?$/i.exec(term);
    if (!m) throw new ODataError(`Syntax error in $orderby at '${term}'.`);
    if (!fields[m[1]!]) throw new ODataError(`Could not find a property named '${m[1]}' on type 'Customer'.`);
    return { field: m[1]!, desc: (m[2] ?? 'asc').toLowerCase() === 'desc' };
  });
}

export function parseList(input: string, allowed: readonly string[], option: string): string[] {
  const items = input
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (items.length === 0) throw new ODataError(`${option} is empty.`);
  for (const i of items)
    if (!allowed.includes(i))
      throw new ODataError(`Could not find a property named '${i}' on type 'Customer' (in ${option}).`);
  return items;
}
