"""Schemathesis hooks of scripts/schemathesis.sh: the rules of the catalog's data that no JSON
Schema can say, applied to generated requests so that a schema-valid request stays one the
server must accept. Nothing else is changed; schemathesis revalidates a request a hook
changed, so a negative case stays negative unless the hook made it valid.

- A product's `category` and a category's `parent` name a category that exists: a slug the
  schema allows becomes one of the demo catalog's (`serve --demo`).
- `min_price` above `max_price` is a 400 (a range the schema cannot order): the two are
  swapped.
- A new user's password has at least 5 different characters: one that has fewer gets five
  different ones in its first places (its length kept).
- A synonym group holds at least two words once trimmed and lower-cased: a repeated word is
  replaced by a new one.
- A listing's or search's `cursor` is one the API gave out (opaque, signed): a generated one
  is left out (`fuzz/fuzz_targets/cursor.rs` fuzzes cursors).
- Headers the operation does not declare are dropped: an HTTP server ignores header fields it
  does not know (RFC 9110, section 5.1), so a request whose only fault is one is not invalid.
"""

import copy
import re
import sys

import hypothesis.internal.filtering as _filtering
import hypothesis.internal.lambda_sources as _lambda_sources
import schemathesis

# CPython before 3.11.8 (this machine has 3.11.7) can raise SystemError "AST constructor
# recursion depth mismatch" (python/cpython#106905) when hypothesis parses a source file deep in
# the stack to describe a lambda; the description is only for messages, but the error makes
# hypothesis report a FlakyFailure for the operation being generated (POST /api/products/bulk
# in the full run). Describe such a lambda as unknown instead.
if sys.version_info < (3, 11, 8):
    _describe_lambda = _lambda_sources.lambda_description

    def _lambda_description_or_unknown(f):
        try:
            return _describe_lambda(f)
        except SystemError:
            return "lambda: <unknown>"

    _lambda_sources.lambda_description = _lambda_description_or_unknown
    _filtering.lambda_description = _lambda_description_or_unknown

SLUG = re.compile(r"[a-z0-9-]{1,64}")
DIGITS = re.compile(r"[0-9]+")
CATEGORIES = ("electronics", "books")
ALWAYS_DECLARED = {"authorization", "content-type"}
PRICED = {"/api/products", "/api/search"}


def _is_slug(value):
    return isinstance(value, str) and SLUG.fullmatch(value) is not None


def _existing_category(product):
    if isinstance(product, dict) and _is_slug(product.get("category")):
        product["category"] = CATEGORIES[0]


def _distinct_password(user):
    password = user.get("password") if isinstance(user, dict) else None
    if isinstance(password, str) and 8 <= len(password) <= 1024 and len(set(password)) < 5:
        user["password"] = "Vq7#z" + password[5:]


def _distinct_synonyms(body):
    groups = body.get("groups") if isinstance(body, dict) else None
    if not isinstance(groups, list):
        return
    for group in groups:
        if not isinstance(group, list):
            continue
        seen = set()
        for index, word in enumerate(group):
            if not isinstance(word, str):
                continue
            key = word.strip().lower()
            fresh = 0
            while key in seen:
                fresh += 1
                word = f"w{index}x{fresh}"
                key = word
            group[index] = word
            seen.add(key)


def _body(operation, body):
    method, path = operation.method.upper(), operation.path
    if path == "/api/products" and method == "POST" or path == "/api/products/{id}" and method == "PATCH":
        _existing_category(body)
    elif path == "/api/products/bulk" and isinstance(body, list):
        for item in body:
            _existing_category(item)
    elif path == "/api/categories" and isinstance(body, dict) and _is_slug(body.get("parent")):
        body["parent"] = CATEGORIES[1] if body.get("slug") == CATEGORIES[0] else CATEGORIES[0]
    elif path == "/api/auth/users":
        _distinct_password(body)
    elif path == "/api/search/synonyms":
        _distinct_synonyms(body)
    return body


def _price(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    # ASCII digits only: str.isdigit() is also true of "²", which int() refuses.
    if isinstance(value, str) and DIGITS.fullmatch(value):
        return int(value)
    return None


def _query(operation, query):
    if operation.path in PRICED and isinstance(query, dict):
        query.pop("cursor", None)
        low, high = _price(query.get("min_price")), _price(query.get("max_price"))
        if low is not None and high is not None and low > high:
            query["min_price"], query["max_price"] = query["max_price"], query["min_price"]
    return query


def _headers(operation, headers):
    declared = {parameter.name.lower() for parameter in operation.headers} | ALWAYS_DECLARED
    return {name: value for name, value in headers.items() if name.lower() in declared}


# map_case, not map_body and the like: the coverage phase applies only case hooks. A part that
# changed is assigned back, so schemathesis sees the change and revalidates the case; one that
# did not is left alone (assigning it anyway confuses the missing-header check).
@schemathesis.hook
def map_case(context, case):
    operation = context.operation
    if isinstance(case.body, (dict, list)):
        body = _body(operation, copy.deepcopy(case.body))
        if body != case.body:
            case.body = body
    if isinstance(case.query, dict):
        query = _query(operation, dict(case.query))
        if query != case.query:
            case.query = query
    if case.headers:
        headers = _headers(operation, case.headers)
        if len(headers) != len(case.headers):
            case.headers = headers
    return case
