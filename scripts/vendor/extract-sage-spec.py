#!/usr/bin/env python3
"""Extracts the parts of Sage's published specs the product relies on into test/fixtures/sage/spec/.

Run from the repo root with the mirrors of the source repositories (see each output's `x-provenance`):
  python3 scripts/vendor/extract-sage-spec.py <sage-php swagger-2.0.0.json> <python-sage openapi.user_business.json> \
      <sage200 SopSalesOrders.json> <provenance-json>
Only GET operations of the named paths are kept, with every definition they reference (transitively).
"""
import json, sys

def refs(node, out):
    if isinstance(node, dict):
        r = node.get('$ref')
        if isinstance(r, str) and r.startswith('#/definitions/'):
            out.add(r.split('/')[-1])
        for v in node.values():
            refs(v, out)
    elif isinstance(node, list):
        for v in node:
            refs(v, out)

def subset(spec, paths, provenance, extra_defs=()):
    out = {k: spec[k] for k in ('swagger', 'openapi', 'info', 'host', 'basePath', 'schemes', 'produces', 'consumes') if k in spec}
    out['x-provenance'] = provenance
    out['paths'] = {p: {'get': spec['paths'][p]['get']} for p in paths}
    defs = spec.get('definitions') or spec.get('components', {}).get('schemas', {})
    want, seen = set(extra_defs), set()
    refs(out['paths'], want)
    while want - seen:
        name = sorted(want - seen)[0]
        seen.add(name)
        refs(defs.get(name, {}), want)
    out['definitions'] = {k: defs[k] for k in sorted(seen) if k in defs}
    return out

accounting, user_business, sop, prov = sys.argv[1:5]
prov = json.load(open(prov))
a = json.load(open(accounting))
json.dump(subset(a, ['/contacts', '/contacts/{key}'], prov['accounting']), open('test/fixtures/sage/spec/sage-accounting-contacts.swagger.json', 'w'), indent=1, sort_keys=True)
ub = json.load(open(user_business))
ub_paths = [p for p in ('/businesses', '/businesses/{key}', '/user') if p in ub['paths']]
json.dump(subset(ub, ub_paths, prov['user_business']), open('test/fixtures/sage/spec/sage-accounting-user-business.swagger.json', 'w'), indent=1, sort_keys=True)
s = json.load(open(sop))
frag = {k: s[k] for k in ('swagger', 'info', 'host', 'basePath') if k in s}
frag['x-provenance'] = prov['sage200']
# Sage 200 has no public customers definition; these fragments pin the host, base path, list shape (bare array) and
# the "(UTC)" date-time fields with no zone in Sage's own sample.
frag['paths'] = {'/customers/{customerId}/sop_orders': s['paths']['/customers/{customerId}/sop_orders'], '/sop_orders': {'get': s['paths']['/sop_orders']['get']}}
frag['definitions'] = {'sop_order': {'type': 'object', 'properties': {k: v for k, v in s['definitions']['sop_order']['properties'].items() if k in ('id', 'currency_id', 'currency', 'customer_id', 'date_time_created', 'date_time_updated')}}}
json.dump(frag, open('test/fixtures/sage/spec/sage200-sop-fragment.swagger.json', 'w'), indent=1, sort_keys=True)

# Sage 200 customer field list: the docblock of SelectCo/sage200-data-objects src/Sales/CustomerDTO.php (mirrors Sage's
# APIM reference sample), kept as {field: example} so tests can check names and JSON types.
if len(sys.argv) > 5:
    import re
    php = open(sys.argv[5]).read()
    block = php.split('/**', 1)[1].split('*/', 1)[0]
    body = '{' + ','.join(l.strip().lstrip('*').strip().rstrip(',') for l in block.splitlines() if l.strip().lstrip('*').strip().startswith('"')) + '}'
    fields = json.loads(body)
    json.dump({'x-provenance': prov['sage200_fields'], 'fields': fields}, open('test/fixtures/sage/spec/sage200-customer-fields.json', 'w'), indent=1)
