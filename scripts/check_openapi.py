"""Static checks of the HTTP contract: schemas/openapi.json and the JSON Schemas of schemas/.

    .venv/bin/python scripts/check_openapi.py

Offline and without a stack (jsonschema, as installed with schemathesis; the OpenAPI 3.1
meta-check runs when openapi-spec-validator is installed too). Prints what it checked and
every finding; exits 1 if there is any:

- every schema file parses, and every `$ref` of openapi.json and of the schema files
  resolves (files relative to the referencing file, fragments as JSON pointers);
- the document is valid OpenAPI 3.1 (checked on the bundle scripts/fuzz.py builds);
- every schema of the HTTP contract (request and response bodies, parameters, headers, and
  every schema file they reference) is bounded: a string has maxLength (or is an enum or a
  const), equal to the longest match of an anchored pattern (or to the longest value of an
  enum or const, where one is given); an array has maxItems; an integer has format
  int32/int64, minimum and maximum; a number minimum and maximum;
- every operation answers 500, 503 (SERVICE_UNAVAILABLE, with Retry-After) and 429 (the
  gateway throttles every route); the operations the functions rate-limit themselves
  (RATE_LIMITED) answer 429 as a problem; every 429 and 503 of the functions lists
  Retry-After, every answer of the functions X-Request-Id (required where only the functions
  answer, optional where API Gateway's own answer shares the status); body-taking operations
  answer 400, secured ones 401;
- every example (`examples` of a schema, `example`/`examples` of the document) validates,
  formats included;
- every value of fixtures/crm-demo.json that reaches a response fits the response schema
  (FIXTURE_FIELDS, FIXTURE_COUNTS).
"""

import json
import re
import sys
from collections import Counter
from pathlib import Path

try:
    import re._parser as sre_parse  # Python 3.11+
except ImportError:  # pragma: no cover
    import sre_parse  # type: ignore[no-redef]

import jsonschema
import referencing
from referencing.jsonschema import DRAFT202012

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"
OPENAPI = SCHEMAS / "openapi.json"
FIXTURE = ROOT / "fixtures" / "crm-demo.json"
# openapi.json has no $id; this base makes its file references resolve like the schemas' $ids.
OPENAPI_URI = "https://schemas.evi-portal.example/v1/openapi.json"

# Operations whose functions answer 429 TOO_MANY_ATTEMPTS themselves (grep TOO_MANY / TooManyAttempts
# in shared/ and functions/): identification attempts per customer number, login and password
# attempts, sensitive changes confirmed with the current password, messages without a session.
RATE_LIMITED = {
    "changeContactData",
    "deleteAccount",
    "lookupAnonymousMeterReading",
    "submitAnonymousMeterReading",
    "verifyRegistration",
    "addCustomerNumber",
    "login",
    "changePassword",
    "changeBankDetails",
    "revokeDirectDebitMandate",
    "terminateContract",
    "sendMessage",
    "requestPasswordReset",
}
# Answers of the functions that do not send X-Request-Id (yet): the file download.
NO_REQUEST_ID: set = set()

SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
SCHEMA_VALUES = ("items", "additionalProperties", "unevaluatedProperties", "unevaluatedItems", "contains", "not",
                 "if", "then", "else", "propertyNames", "contentSchema")
SCHEMA_LISTS = ("prefixItems", "allOf", "anyOf", "oneOf")
INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
UNBOUNDED = 1 << 32

findings: list[str] = []


def fail(message: str) -> None:
    findings.append(message)


def escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def pointer_get(doc, pointer: str):
    node = doc
    for raw in pointer.split("/")[1:] if pointer else []:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, list):
            node = node[int(token)]
        else:
            node = node[token]
    return node


def subschemas(node, pointer: str):
    """Every schema object in a schema, with its JSON pointer (the node itself first)."""
    if not isinstance(node, dict):
        return
    yield pointer, node
    for key in SCHEMA_MAPS:
        for name, child in (node.get(key) or {}).items():
            yield from subschemas(child, f"{pointer}/{key}/{escape(name)}")
    for key in SCHEMA_VALUES:
        if isinstance(node.get(key), dict):
            yield from subschemas(node[key], f"{pointer}/{key}")
    for key in SCHEMA_LISTS:
        for i, child in enumerate(node.get(key) or []):
            yield from subschemas(child, f"{pointer}/{key}/{i}")


def refs(node, pointer=""):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield pointer, node["$ref"]
        for key, value in node.items():
            yield from refs(value, f"{pointer}/{escape(key)}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from refs(value, f"{pointer}/{i}")


# --- 1. files and references -------------------------------------------------------------

docs: dict[Path, object] = {}
for path in sorted(SCHEMAS.rglob("*.json")):
    try:
        docs[path] = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        fail(f"{path.relative_to(ROOT)}: not JSON: {e}")
if OPENAPI not in docs:
    print("\n".join(findings) or "schemas/openapi.json is missing")
    sys.exit(1)
openapi = docs[OPENAPI]


def target_of(ref: str, base: Path):
    """(file, pointer) a reference names, relative to the file it is in."""
    file, _, fragment = ref.partition("#")
    target = (base.parent / file).resolve() if file else base
    return target, fragment


def resolve(ref: str, base: Path):
    target, fragment = target_of(ref, base)
    if target not in docs:
        raise LookupError(f"no file {target}")
    if fragment and not fragment.startswith("/"):
        raise LookupError("only JSON-pointer fragments are used here")
    return target, pointer_get(docs[target], fragment)


ref_count = 0
for path, doc in docs.items():
    for at, ref in refs(doc):
        ref_count += 1
        try:
            resolve(ref, path)
        except (LookupError, KeyError, IndexError, ValueError) as e:
            fail(f"{path.relative_to(ROOT)}{at}: $ref {ref} does not resolve ({e})")

# The files the HTTP contract uses: referenced from openapi.json, transitively.
contract_files: set[Path] = set()
queue = [OPENAPI]
while queue:
    current = queue.pop()
    for _, ref in refs(docs.get(current, {})):
        target, _ = target_of(ref, current)
        if target in docs and target != OPENAPI and target not in contract_files:
            contract_files.add(target)
            queue.append(target)

# --- 2. OpenAPI 3.1 meta-check -------------------------------------------------------------

meta = "skipped (openapi-spec-validator not installed)"
try:
    from openapi_spec_validator import validate as validate_spec
except ImportError:  # pragma: no cover
    validate_spec = None
if validate_spec is not None:
    sys.dont_write_bytecode = True  # nothing written into the workspace (it restarts scripts/dev's functions)
    sys.path.insert(0, str(ROOT / "scripts"))
    from fuzz import bundle  # the same bundle schemathesis reads

    try:
        validate_spec(bundle())
        meta = "valid OpenAPI 3.1 (bundled as for schemathesis)"
    except Exception as e:  # noqa: BLE001 - the validator raises several types
        fail(f"openapi.json is not valid OpenAPI 3.1: {str(e).splitlines()[0]}")
        meta = "INVALID"

# --- 3. bounds -----------------------------------------------------------------------------


def pattern_width(pattern: str):
    """(min, max) length of the strings an anchored pattern matches; None if not anchored."""
    try:
        parsed = sre_parse.parse(pattern)
    except re.error as e:
        return e
    items = parsed.data
    anchored = (
        len(items) >= 2
        and str(items[0][0]) == "AT" and str(items[0][1]) == "AT_BEGINNING"
        and str(items[-1][0]) == "AT" and str(items[-1][1]) == "AT_END"
    )
    return parsed.getwidth() if anchored else None


def types_of(schema: dict) -> set:
    t = schema.get("type")
    return set(t) if isinstance(t, list) else {t} if t else set()


def check_bounds(where: str, schema: dict) -> Counter:
    seen = Counter()
    types = types_of(schema)
    fixed = "enum" in schema or "const" in schema
    if "string" in types and not fixed:
        seen["string"] += 1
        max_length = schema.get("maxLength")
        if not isinstance(max_length, int):
            fail(f"{where}: string without maxLength")
        elif schema.get("minLength", 0) > max_length:
            fail(f"{where}: minLength above maxLength")
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and isinstance(max_length, int):
            width = pattern_width(pattern)
            if isinstance(width, re.error):
                fail(f"{where}: pattern does not compile: {width}")
            elif width is not None:
                low, high = width
                if low > max_length:
                    fail(f"{where}: pattern needs {low} characters, maxLength is {max_length}")
                elif high < UNBOUNDED and high != max_length:
                    fail(f"{where}: maxLength {max_length} disagrees with the pattern (at most {high})")
    if fixed and "maxLength" in schema:
        values = schema["enum"] if "enum" in schema else [schema["const"]]
        longest = max((len(v) for v in values if isinstance(v, str)), default=None)
        if longest is not None and schema["maxLength"] != longest:
            fail(f"{where}: maxLength {schema['maxLength']} disagrees with the longest value ({longest})")
    if "array" in types or "items" in schema or "prefixItems" in schema:
        seen["array"] += 1
        if not isinstance(schema.get("maxItems"), int):
            fail(f"{where}: array without maxItems")
    if "integer" in types and not fixed:
        seen["integer"] += 1
        fmt = schema.get("format")
        low, high = schema.get("minimum"), schema.get("maximum")
        if fmt not in INT_RANGES:
            fail(f"{where}: integer without format int32/int64")
        if not isinstance(low, int) or not isinstance(high, int):
            fail(f"{where}: integer without minimum and maximum")
        elif fmt in INT_RANGES and not (INT_RANGES[fmt][0] <= low <= high <= INT_RANGES[fmt][1]):
            fail(f"{where}: bounds {low}..{high} do not fit {fmt}")
    if "number" in types and not fixed:
        seen["number"] += 1
        if "minimum" not in schema or "maximum" not in schema:
            fail(f"{where}: number without minimum and maximum")
    if not types and not fixed and not any(k in schema for k in ("$ref", "oneOf", "anyOf", "allOf", "not")):
        # A typeless schema must still be bounded by what it holds.
        if any(k in schema for k in ("pattern", "maxLength", "minLength", "format")):
            fail(f"{where}: string keywords without type")
    return seen


def openapi_schemas():
    """Every inline schema of openapi.json: parameters, headers, media types, components."""
    for name, schema in (openapi.get("components", {}).get("schemas") or {}).items():
        yield f"#/components/schemas/{escape(name)}", schema

    def walk(node, pointer):
        if isinstance(node, dict):
            for key, value in node.items():
                here = f"{pointer}/{escape(key)}"
                if key == "schema" and isinstance(value, dict):
                    yield here, value
                elif key not in ("examples", "example"):
                    yield from walk(value, here)
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from walk(value, f"{pointer}/{i}")

    for section in ("paths", "components"):
        for pointer, schema in walk(openapi.get(section, {}), f"#/{section}"):
            if not pointer.startswith("#/components/schemas/"):
                yield pointer, schema


counts = Counter()
for pointer, schema in openapi_schemas():
    for at, node in subschemas(schema, ""):
        counts += check_bounds(f"openapi.json{pointer}{at}", node)
for path in sorted(contract_files):
    for at, node in subschemas(docs[path], ""):
        counts += check_bounds(f"{path.relative_to(SCHEMAS)}#{at}", node)

# --- 4. operations -------------------------------------------------------------------------

components = openapi.get("components", {})


def deref(node):
    while isinstance(node, dict) and "$ref" in node and node["$ref"].startswith("#/"):
        node = pointer_get(openapi, node["$ref"][1:])
    return node


def gateway_answer(content: dict) -> bool:
    """Whether a response documents API Gateway's own answer (application/json GatewayError)."""
    schema = (content.get("application/json") or {}).get("schema") or {}
    return schema.get("$ref") == "#/components/schemas/GatewayError"


def header_names(response: dict) -> set:
    return {name.lower() for name in (response.get("headers") or {})}


operations = 0
for path, item in openapi.get("paths", {}).items():
    for method, op in item.items():
        if method not in ("get", "put", "post", "delete", "patch", "head", "options", "trace"):
            continue
        operations += 1
        name = op.get("operationId", f"{method} {path}")
        responses = {status: deref(r) for status, r in op.get("responses", {}).items()}
        expected = {"500", "503", "429"}
        if "requestBody" in op:
            expected.add("400")
        if "security" in op:
            expected.add("401")
        for status in sorted(expected - responses.keys()):
            fail(f"{name}: no {status} answer")
        for status, response in responses.items():
            content = response.get("content") or {}
            headers = header_names(response)
            from_function = "application/problem+json" in content or status.startswith("2")
            from_gateway = gateway_answer(content)
            # API Gateway's own 429 (throttling) sends no Retry-After; the functions' 429 and 503 may.
            if status in ("429", "503") and from_function and "retry-after" not in headers:
                fail(f"{name} {status}: no Retry-After header")
            if from_function and (name, status) not in NO_REQUEST_ID and "x-request-id" not in headers:
                fail(f"{name} {status}: no X-Request-Id header")
            for header, definition in (response.get("headers") or {}).items():
                definition = deref(definition)
                if from_gateway and definition.get("required"):
                    fail(f"{name} {status}: {header} is required, but API Gateway's own answer does not send it")
                if not from_gateway and header.lower() == "x-request-id" and not definition.get("required"):
                    fail(f"{name} {status}: X-Request-Id is optional, but only the functions answer this")
        unavailable = responses.get("503")
        if unavailable is not None and "application/problem+json" not in (unavailable.get("content") or {}):
            fail(f"{name} 503: not the functions' SERVICE_UNAVAILABLE problem")
        too_many = responses.get("429", {})
        problem_429 = "application/problem+json" in (too_many.get("content") or {})
        if name in RATE_LIMITED and not problem_429:
            fail(f"{name} 429: the function's TOO_MANY_ATTEMPTS problem is not documented")
        if name not in RATE_LIMITED and problem_429:
            fail(f"{name} 429: documented as the function's problem, but it is not in RATE_LIMITED")
missing_ops = RATE_LIMITED - {op.get("operationId") for item in openapi.get("paths", {}).values() for op in item.values()}
for name in sorted(missing_ops):
    fail(f"RATE_LIMITED names {name}, which is not an operation")

for server in openapi.get("servers", []):
    variables = server.get("variables") or {}
    for var in re.findall(r"{([^}]+)}", server.get("url", "")):
        if "default" not in variables.get(var, {}):
            fail(f"server {server.get('url')}: variable {var} without a default")

# --- 5. examples ---------------------------------------------------------------------------

resources = []
for path, doc in docs.items():
    if path == OPENAPI:
        resources.append((OPENAPI_URI, DRAFT202012.create_resource(doc)))
    elif isinstance(doc, dict) and "$id" in doc:
        resources.append((doc["$id"], DRAFT202012.create_resource(doc)))
registry = referencing.Registry().with_resources(resources)
uri_of = {path: OPENAPI_URI if path == OPENAPI else doc.get("$id") for path, doc in docs.items() if isinstance(doc, dict)}
for path, uri in uri_of.items():
    if uri is None:
        fail(f"{path.relative_to(ROOT)}: no $id")


def validator_for(path: Path, pointer: str):
    return jsonschema.Draft202012Validator(
        {"$ref": f"{uri_of[path]}#{pointer}"},
        registry=registry,
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def errors(validator, instance) -> str | None:
    found = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if not found:
        return None
    first = found[0]
    return f"{'/'.join(map(str, first.absolute_path)) or '(root)'}: {first.message[:200]}"


examples = 0
for path, doc in docs.items():
    roots = [("", doc)] if path != OPENAPI else [
        (f"/components/schemas/{escape(n)}", s) for n, s in (components.get("schemas") or {}).items()
    ]
    for root, schema in roots:
        for at, node in subschemas(schema, root):
            for i, example in enumerate(node.get("examples") or []):
                examples += 1
                problem = errors(validator_for(path, at), example)
                if problem:
                    fail(f"{path.relative_to(SCHEMAS)}#{at} example {i}: {problem}")


def document_examples(node, pointer):
    """`example` / `examples` beside a `schema` in openapi.json (media types, parameters, headers)."""
    if isinstance(node, dict):
        if isinstance(node.get("schema"), dict):
            values = []
            if "example" in node:
                values.append(("example", node["example"]))
            for key, ex in (node.get("examples") or {}).items():
                if isinstance(ex, dict) and "value" in ex:
                    values.append((key, ex["value"]))
            for key, value in values:
                yield f"{pointer}/schema", key, value
        for key, value in node.items():
            if key != "schema":
                yield from document_examples(value, f"{pointer}/{escape(key)}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from document_examples(value, f"{pointer}/{i}")


for pointer, key, value in document_examples(openapi, ""):
    examples += 1
    problem = errors(validator_for(OPENAPI, pointer), value)
    if problem:
        fail(f"openapi.json#{pointer} example {key}: {problem}")

# --- 6. fixture values against the response schemas ----------------------------------------

ADDRESS = ("common.schema.json", "/$defs/address")
CUSTOMER = "customer.response.schema.json"
BANK = "bank-details.response.schema.json"
BANK_ACCOUNT = "/properties/bankAccount/oneOf/1/properties"
REGISTER = "/properties/registers/items/properties"
PLAN = "installment-plan.response.schema.json"
DOCS = "/properties/documents/items/properties"
PRODUCTS = "/properties/products/items/properties"
CODES = "/properties/values/items/properties"


def common(name):
    return ("common.schema.json", f"/$defs/{name}")


def masked(iban: str) -> str:
    compact = "".join(iban.split())
    return "*" * max(len(compact) - 4, 0) + compact[-4:]


# fixture path ("[]" walks a list) -> (schema file, pointer), optionally a transformation of the value.
FIXTURE_FIELDS = [
    ("businessPartners[].partnerNumber", common("customerNumber")),
    *[(f"businessPartners[].{f}", (CUSTOMER, f"/properties/{f}"))
      for f in ("partnerType", "salutation", "title", "firstName", "lastName", "phone", "mobile", "fax", "email")],
    ("businessPartners[].address", ADDRESS),
    ("contractAccounts[].accountNumber", common("accountNumber")),
    ("contractAccounts[].billingAddress", ADDRESS),
    ("contractAccounts[].billRecipient", ("account-contracts.response.schema.json", "/properties/billRecipient")),
    ("contractAccounts[].paymentMethod", (BANK, "/properties/paymentMethod")),
    *[(f"contractAccounts[].{a}.{f}", (BANK, f"{BANK_ACCOUNT}/{f}"))
      for a in ("bankAccount", "payoutAccount") for f in ("holder", "bic", "bankName")],
    *[(f"contractAccounts[].{a}.iban", (BANK, f"{BANK_ACCOUNT}/iban"), masked) for a in ("bankAccount", "payoutAccount")],
    *[(f"contractAccounts[].mandate.{f}", (BANK, f"/properties/mandate/oneOf/1/properties/{f}"))
      for f in ("reference", "status", "signedOn")],
    ("contracts[].contractNumber", common("contractNumber")),
    ("contracts[].accountNumber", common("accountNumber")),
    ("contracts[].productId", ("contract.response.schema.json", "/properties/productId")),
    ("contracts[].startDate", common("date")),
    ("contracts[].endDate", ("contract.response.schema.json", "/properties/endDate")),
    ("contracts[].installationId", common("installationId")),
    ("contracts[].consumptionPoint.maloId", common("maloId")),
    ("contracts[].consumptionPoint.address", ADDRESS),
    ("installations[].installationId", common("installationId")),
    ("installations[].meterNumbers[]", common("meterNumber")),
    ("meters[].meterNumber", common("meterNumber")),
    ("meters[].commodity", common("commodity")),
    ("meters[].unit", ("meter-readings.response.schema.json", "/properties/unit")),
    *[(f"meters[].registers[].{f}", ("meter-readings.response.schema.json", f"{REGISTER}/{f}"))
      for f in ("code", "obis", "digits", "decimals")],
    ("meterReadings[].meterNumber", common("meterNumber")),
    ("meterReadings[].register", common("registerCode")),
    ("meterReadings[].date", common("date")),
    ("meterReadings[].value", common("decimal")),
    ("meterReadings[].source", common("readingSource")),
    ("installmentPlans[].accountNumber", common("accountNumber")),
    ("installmentPlans[].amount", common("money")),
    ("installmentPlans[].dueDay", (PLAN, "/properties/dueDay")),
    ("installmentPlans[].validFrom", common("date")),
    ("installmentPlans[].changeLockedReason", (PLAN, "/properties/changeRefusedReason")),
    *[(f"installmentPlans[].installments[].{f}", (PLAN, f"/properties/installments/items/properties/{f}"))
      for f in ("dueDate", "amount", "status")],
    *[(f"documents[].{f}", ("documents.response.schema.json", f"{DOCS}/{f}"))
      for f in ("documentId", "accountNumber", "category", "date", "title", "fileName", "mediaType")],
    ("documents[].partnerNumber", common("customerNumber")),
    *[(f"products[].{f}", ("products.response.schema.json", f"{PRODUCTS}/{f}"))
      for f in ("productId", "name", "commodity", "customerType", "basePricePerYear", "unitPrice", "unitPriceLow",
                "unit", "priceGuaranteeUntil")],
    ("portalLogins[].loginId", common("loginId")),
    ("portalLogins[].username", ("account.response.schema.json", "/properties/username")),
    ("portalLogins[].email", ("account.response.schema.json", "/properties/email")),
    ("portalLogins[].status", common("loginStatus")),
    ("portalLogins[].createdAt", common("dateTime")),
    ("portalLogins[].partnerNumbers[]", common("customerNumber")),
]


def values_at(doc, path: str):
    nodes = [doc]
    for part in path.split("."):
        step = []
        name, many = (part[:-2], True) if part.endswith("[]") else (part, False)
        for node in nodes:
            if not isinstance(node, dict) or name not in node:
                continue
            value = node[name]
            if many:
                step.extend(value if isinstance(value, list) else [])
            else:
                step.append(value)
        nodes = step
    return nodes


def max_items(file: str, pointer: str) -> int:
    return pointer_get(docs[SCHEMAS / file], pointer)["maxItems"]


fixture = json.loads(FIXTURE.read_text(encoding="utf-8"))
fixture_values = 0
for entry in FIXTURE_FIELDS:
    path, (file, pointer), *transform = entry
    validator = validator_for(SCHEMAS / file, pointer)
    for value in values_at(fixture, path):
        if transform and isinstance(value, str):
            value = transform[0](value)
        fixture_values += 1
        problem = errors(validator, value)
        if problem:
            fail(f"fixture {path} = {json.dumps(value, ensure_ascii=False)[:80]}: {problem} ({file}#{pointer})")
for name, entries in (fixture.get("codeLists") or {}).items():
    fixture_values += 1
    problem = errors(validator_for(SCHEMAS / "code-list.response.schema.json", "/properties/name"), name)
    if problem:
        fail(f"fixture code list name {name}: {problem}")
    for entry in entries:
        for field in ("key", "label", "routeTo", "terminationRule"):
            fixture_values += 1
            problem = errors(validator_for(SCHEMAS / "code-list.response.schema.json", f"{CODES}/{field}"),
                             entry.get(field))
            if problem:
                fail(f"fixture codeLists.{name}[].{field} = {entry.get(field)!r}: {problem}")


def count_check(label: str, counts_by_key: Counter, file: str, pointer: str) -> None:
    limit = max_items(file, pointer)
    for key, n in counts_by_key.items():
        if n > limit:
            fail(f"fixture: {label} {key} has {n}, the response allows {limit} ({file}#{pointer})")


accounts_of = Counter(a["partnerNumber"] for a in fixture.get("contractAccounts", []))
contracts_of_account = Counter(c["accountNumber"] for c in fixture.get("contracts", []))
owner = {a["accountNumber"]: a["partnerNumber"] for a in fixture.get("contractAccounts", [])}
contracts_of_partner = Counter(owner.get(c["accountNumber"]) for c in fixture.get("contracts", []))
documents_of = Counter(d["partnerNumber"] for d in fixture.get("documents", []))
history_of = Counter()
for m, register, date in {(r["meterNumber"], r["register"], r["date"]) for r in fixture.get("meterReadings", [])}:
    history_of[m] += 1
FIXTURE_COUNTS = [
    ("customer: contract accounts", accounts_of, "dashboard.response.schema.json",
     "/properties/partners/items/properties/contractAccounts"),
    ("contract account: contracts", contracts_of_account, "account-contracts.response.schema.json", "/properties/contracts"),
    ("customer: consumption points", contracts_of_partner, "anonymous-meter-reading-lookup.response.schema.json",
     "/properties/consumptionPoints"),
    ("installation: meters", Counter({i["installationId"]: len(i["meterNumbers"]) for i in fixture.get("installations", [])}),
     "anonymous-meter-reading-lookup.response.schema.json",
     "/properties/consumptionPoints/items/properties/meters"),
    ("meter: registers", Counter({m["meterNumber"]: len(m["registers"]) for m in fixture.get("meters", [])}),
     "meter-readings.response.schema.json", "/properties/registers"),
    ("meter: history entries", history_of, "meter-readings.response.schema.json", "/properties/history"),
    ("installment plan: installments",
     Counter({p["accountNumber"]: len(p.get("installments", [])) for p in fixture.get("installmentPlans", [])}),
     PLAN, "/properties/installments"),
    ("customer: documents", documents_of, "documents.response.schema.json", "/properties/documents"),
    ("login: customer numbers", Counter({lg["loginId"]: len(lg["partnerNumbers"]) for lg in fixture.get("portalLogins", [])}),
     "account.response.schema.json", "/properties/customerNumbers"),
    ("catalog: products", Counter({"all": len(fixture.get("products", []))}), "products.response.schema.json",
     "/properties/products"),
    ("code list: values", Counter({n: len(v) for n, v in (fixture.get("codeLists") or {}).items()}),
     "code-list.response.schema.json", "/properties/values"),
]
for label, counted, file, pointer in FIXTURE_COUNTS:
    count_check(label, counted, file, pointer)

# --- report --------------------------------------------------------------------------------

print(f"schema files: {len(docs)} parsed, {len(contract_files)} used by the HTTP contract; $refs: {ref_count}")
print(f"openapi.json: {meta}; {operations} operations")
print(f"bounds: {counts['string']} strings, {counts['array']} arrays, {counts['integer']} integers, "
      f"{counts['number']} numbers checked")
print(f"examples: {examples} validated; fixture: {fixture_values} values and {len(FIXTURE_COUNTS)} list sizes checked")
if findings:
    print(f"\n{len(findings)} finding(s):")
    for finding in findings:
        print(f"  {finding}")
    sys.exit(1)
print("check_openapi: passed")
