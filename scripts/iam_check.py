"""IAM, tested: every AWS call a function made during the tests, checked against that
function's own policy in infra/template.yaml with IAM's matching rules.

    iam_check.py RECORDING ENV_FILE [TEMPLATE]   exit 1 if any call is not allowed
                                                 (TEMPLATE: infra/template.yaml)

The emulator does not enforce IAM, so a grant missing from the template would only show
on AWS. The emulator records every call it answers (one JSON line each); each function
names itself in the SDK's user agent (`app/<function>`, `portal_platform::aws`), so every
call is matched to the function that made it. The test harness's own calls (creating
stacks, reading tables back) carry no name and are not checked.

For each call the check derives the IAM actions and resources AWS authorizes it by:
- DynamoDB: the operation on the table, or on `table/T/index/I` when a query or scan
  names an index; a transaction is authorized item by item (`PutItem`, `UpdateItem`,
  `DeleteItem`, `ConditionCheckItem`; `GetItem` for `TransactGetItems`).
- SQS: the operation on the queue's ARN (`SendMessageBatch` is `sqs:SendMessage`).
- SES v2: `ses:SendEmail` on the identity of the sender address.
- S3: `s3:GetObject` (also for HEAD), `s3:PutObject`, `s3:DeleteObject` on
  `bucket/key`, `s3:ListBucket` on the bucket. Reading a key that does not exist also
  needs `s3:ListBucket` on the bucket: without it S3 answers 403 AccessDenied instead of
  404 NoSuchKey. The check follows which keys exist from the recorded writes.
A statement allows a call when its action pattern matches (case-insensitive, `*` and `?`)
and its resource pattern matches (case-sensitive); a matching Deny wins. Statements with a
Condition are not assumed to allow anything.

It also lists the grants no recorded call used.
"""

import base64
import json
import re
import sys
from collections import defaultdict
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "infra" / "template.yaml"
DEFAULT_ACCOUNT = "123456789012"
PARTITION = "aws"
# Presigned requests carry the signer's credentials, not its user agent: these functions
# are the only ones that presign, and are held to their grants for those requests.
PRESIGNERS = ["documents"]


class Unresolved(str):
    """A policy value this check cannot resolve locally: it matches nothing."""


# --- the template -------------------------------------------------------------------


class Template:
    def __init__(self, template, region, stack_name):
        self.t = template
        self.region = region
        self.stack_name = stack_name
        self.parameters = {k: v.get("Default") for k, v in template.get("Parameters", {}).items()}
        self._conditions = {}

    def condition(self, name):
        if name not in self._conditions:
            self._conditions[name] = bool(self.value(self.t.get("Conditions", {})[name], DEFAULT_ACCOUNT))
        return self._conditions[name]

    def pseudo(self, name, account):
        return {
            "AWS::Partition": PARTITION,
            "AWS::Region": self.region,
            "AWS::AccountId": account,
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }.get(name, Unresolved(name))

    # The property naming each kind's physical name, and how `Ref` and `Fn::GetAtt … Arn`
    # render that name.
    KINDS = {
        "AWS::DynamoDB::Table": ("TableName", "{name}", "arn:{partition}:dynamodb:{region}:{account}:table/{name}"),
        "AWS::S3::Bucket": ("BucketName", "{name}", "arn:{partition}:s3:::{name}"),
        "AWS::SQS::Queue": (
            "QueueName",
            "https://sqs.{region}.amazonaws.com/{account}/{name}",
            "arn:{partition}:sqs:{region}:{account}:{name}",
        ),
    }

    def physical(self, name, account, form):
        """A resource's `Ref` (form 1) or ARN (form 2), or None for what this check cannot name."""
        resource = self.t["Resources"].get(name)
        if resource is None or resource["Type"] not in self.KINDS:
            return None
        kind = self.KINDS[resource["Type"]]
        physical = self.value(resource.get("Properties", {})[kind[0]], account)
        return kind[form].format(partition=PARTITION, region=self.region, account=account, name=physical)

    def ref(self, name, account):
        if name.startswith("AWS::"):
            return self.pseudo(name, account)
        if name in self.parameters:
            return self.parameters[name]
        return self.physical(name, account, 1) or Unresolved(name)

    def arn(self, name, account):
        return self.physical(name, account, 2) or Unresolved(f"{name}.Arn")

    def get_att(self, name, attribute, account):
        if attribute == "Arn":
            return self.arn(name, account)
        return Unresolved(f"{name}.{attribute}")

    def value(self, v, account):
        """Resolves the intrinsic functions a policy or a resource name uses."""
        if isinstance(v, (str, int, float, bool)) or v is None:
            return v
        if isinstance(v, list):
            out = [self.value(x, account) for x in v]
            return [x for x in out if x is not None]
        if not isinstance(v, dict) or len(v) != 1:
            return {k: self.value(x, account) for k, x in v.items()} if isinstance(v, dict) else v
        (fn, arg), = v.items()
        if fn == "Ref":
            return self.ref(arg, account)
        if fn == "Fn::GetAtt":
            name, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.get_att(name, attribute, account)
        if fn == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            unresolved = []

            def sub(m):
                key = m.group(1)
                if key in variables:
                    out = self.value(variables[key], account)
                elif "." in key and not key.startswith("AWS::"):
                    out = self.get_att(*key.split(".", 1), account)
                else:
                    out = self.ref(key, account)
                if isinstance(out, Unresolved) or out is None:
                    unresolved.append(key)
                    return ""
                return str(out)

            out = re.sub(r"\$\{([^}!]+)\}", sub, text)
            return Unresolved(text) if unresolved else out
        if fn == "Fn::Join":
            sep, parts = arg
            parts = [self.value(p, account) for p in parts]
            if any(isinstance(p, Unresolved) for p in parts):
                return Unresolved(str(arg))
            return sep.join(str(p) for p in parts)
        if fn == "Fn::If":
            name, yes, no = arg
            return self.value(yes if self.condition(name) else no, account)
        if fn == "Fn::Equals":
            a, b = (self.value(x, account) for x in arg)
            return str(a) == str(b)
        if fn == "Fn::Not":
            return not self.value(arg[0], account)
        if fn == "Fn::And":
            return all(self.value(x, account) for x in arg)
        if fn == "Fn::Or":
            return any(self.value(x, account) for x in arg)
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Fn::Select":
            index, items = arg
            return self.value(items, account)[int(index)]
        if fn == "Fn::Split":
            sep, text = arg
            return str(self.value(text, account)).split(sep)
        return Unresolved(fn)

    def functions(self):
        """Each function's name (its binary) and its policy statements (unresolved)."""
        out = {}
        for logical_id, resource in self.t["Resources"].items():
            if resource["Type"] != "AWS::Serverless::Function":
                continue
            props = resource.get("Properties", {})
            name = (resource.get("Metadata", {}).get("BuildProperties", {}) or {}).get("Binary")
            if not name:
                name = Path(str(props.get("CodeUri", logical_id)).rstrip("/")).name
            statements = []
            for policy in props.get("Policies", []):
                if isinstance(policy, dict) and set(policy) == {"Statement"}:
                    statements.extend(policy["Statement"])
                else:
                    raise SystemExit(
                        f"{logical_id}: policy {policy!r} is not a plain statement list; "
                        "write it as statements (this check does not expand SAM policy templates)"
                    )
            statements.extend(event_grants(props.get("Events", {})))
            out[name] = (logical_id, statements)
        return out


# What SAM adds to a function's role for its event sources: the poller reads with the
# function's role (AWSLambdaSQSQueueExecutionRole, AWSLambdaDynamoDBExecutionRole).
EVENT_ACTIONS = {
    "SQS": ("Queue", ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"]),
    "DynamoDB": ("Stream", ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"]),
}


def event_grants(events):
    out = []
    for name, event in events.items():
        if event.get("Type") in EVENT_ACTIONS:
            prop, actions = EVENT_ACTIONS[event["Type"]]
            out.append({"Sid": f"{name} (SAM event source)", "Effect": "Allow", "Action": actions,
                        "Resource": event["Properties"][prop]})
    return out


# --- IAM matching -------------------------------------------------------------------


def pattern(text, ignore_case):
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    return re.compile(f"^{regex}$", re.IGNORECASE if ignore_case else 0)


def as_list(v):
    return v if isinstance(v, list) else [v]


# Condition operators this check evaluates; a statement with any other operator, or with a
# key the call's context lacks, is not assumed to allow anything.
OPERATORS = {
    "StringEquals": lambda value, wanted: value in wanted,
    "StringLike": lambda value, wanted: any(pattern(w, False).match(value) for w in wanted),
    "StringEqualsIgnoreCase": lambda value, wanted: value.lower() in [w.lower() for w in wanted],
}


class Grant:
    """One statement of a function's policy, resolved for one account."""

    def __init__(self, sid, effect, actions, resources, condition=None):
        self.sid = sid
        self.effect = effect
        self.actions = [(a, pattern(a, True)) for a in actions]
        self.resources = [(r, None if isinstance(r, Unresolved) else pattern(r, False)) for r in resources]
        self.condition = condition or {}

    @property
    def conditional(self):
        return bool(self.condition)

    def holds(self, context):
        """Whether the statement's condition holds for a call with these context keys."""
        for operator, keys in self.condition.items():
            test = OPERATORS.get(operator)
            if test is None:
                return False
            for key, wanted in keys.items():
                value = context.get(key.lower())
                if value is None or not test(value, [str(w) for w in as_list(wanted)]):
                    return False
        return True

    def matches(self, action, resource):
        """The (action, resource) pattern pair that matches, or None."""
        for a, ap in self.actions:
            if not ap.match(action):
                continue
            for r, rp in self.resources:
                if rp is not None and rp.match(resource):
                    return (a, r)
        return None


def grants(template, statements, account):
    out = []
    for i, s in enumerate(statements):
        resources = [template.value(r, account) for r in as_list(s.get("Resource", []))]
        flat = []
        for r in resources:
            flat.extend(as_list(r))
        condition = {
            operator: {key: template.value(wanted, account) for key, wanted in keys.items()}
            for operator, keys in s.get("Condition", {}).items()
        }
        out.append(Grant(s.get("Sid", f"#{i}"), s.get("Effect", "Allow"), as_list(s.get("Action", [])), flat, condition))
    return out


def decide(grant_list, action, resource, context=None):
    """(allowed, the grant and patterns that allowed it)."""
    allowed = None
    for g in grant_list:
        hit = g.matches(action, resource)
        if hit is None or not g.holds(context or {}):
            continue
        if g.effect == "Deny":
            return False, None
        if allowed is None:
            allowed = (g.sid, *hit)
    return allowed is not None, allowed


# --- the recorded calls -------------------------------------------------------------


def header(headers, name):
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


APP = re.compile(r"(?:^|\s)app/([A-Za-z0-9._~-]+)")
SCOPE = re.compile(r"Credential=[^/,]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


def caller(headers, query):
    """The function that made a call: its user agent's app name (Lambda's physical names
    end in `-<Binary>...`: the binary name is matched as the name or its prefix)."""
    for name in ("x-amz-user-agent", "user-agent"):
        m = APP.search(header(headers, name) or "")
        if m:
            return m.group(1)
    if "X-Amz-Signature" in query:
        return "presigned"
    return None


def body_json(entry):
    raw = entry.get("body") or ""
    if entry.get("body_encoded"):
        raw = base64.b64decode(raw).decode("utf-8", "replace")
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {}


def table_arn(region, account, table):
    return f"arn:{PARTITION}:dynamodb:{region}:{account}:table/{table}"


def queue_arn(region, url):
    parts = urlparse(url).path.strip("/").split("/")
    return f"arn:{PARTITION}:sqs:{region}:{parts[-2]}:{parts[-1]}"


def dynamodb_needs(op, body, region, account):
    arn = lambda t: table_arn(region, account, t)  # noqa: E731
    if op == "TransactWriteItems":
        kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
        return [
            (f"dynamodb:{kinds[k]}", arn(v["TableName"]))
            for item in body.get("TransactItems", [])
            for k, v in item.items()
            if k in kinds
        ]
    if op == "TransactGetItems":
        return [("dynamodb:GetItem", arn(item["Get"]["TableName"])) for item in body.get("TransactItems", [])]
    if op in ("BatchGetItem", "BatchWriteItem"):
        return [(f"dynamodb:{op}", arn(t)) for t in body.get("RequestItems", {})]
    table = body.get("TableName")
    if table is None:
        return [(f"dynamodb:{op}", "*")]
    if body.get("IndexName") and op in ("Query", "Scan"):
        return [(f"dynamodb:{op}", f"{arn(table)}/index/{body['IndexName']}")]
    return [(f"dynamodb:{op}", arn(table))]


class S3Objects:
    """Which keys exist, followed from the recorded writes (per account and bucket)."""

    def __init__(self):
        self.keys = set()

    def needs(self, method, url, headers, query, account):
        path = unquote(url.path).lstrip("/")
        bucket, _, key = path.partition("/")
        bucket_arn = f"arn:{PARTITION}:s3:::{bucket}"
        obj = (account, bucket, key)
        if not key:
            if method == "GET" and ("list-type" in query or not query):
                return [("s3:ListBucket", bucket_arn)]
            if method == "POST" and "delete" in query:
                return [("s3:DeleteObject", f"{bucket_arn}/*")]
            return [(f"s3:{method}Bucket", bucket_arn)]
        if method in ("GET", "HEAD"):
            needs = [("s3:GetObject", f"{bucket_arn}/{key}")]
            if obj not in self.keys:
                needs.append(("s3:ListBucket", bucket_arn))
            return needs
        if method == "PUT":
            self.keys.add(obj)
            needs = [("s3:PutObject", f"{bucket_arn}/{key}")]
            source = header(headers, "x-amz-copy-source")
            if source:
                needs.append(("s3:GetObject", f"arn:{PARTITION}:s3:::{unquote(source).lstrip('/')}"))
            return needs
        if method == "DELETE":
            self.keys.discard(obj)
            return [("s3:DeleteObject", f"{bucket_arn}/{key}")]
        return [(f"s3:{method}Object", f"{bucket_arn}/{key}")]


def needs_of(entry, s3):
    """The function that made a call and the (action, resource) pairs IAM checks for it."""
    headers = entry["headers"]
    url = urlparse(entry["url"])
    query = parse_qs(url.query, keep_blank_values=True)
    who = caller(headers, query)
    auth = header(headers, "authorization") or ""
    m = SCOPE.search(auth) or SCOPE.search("Credential=" + "".join(query.get("X-Amz-Credential", [""])))
    if not m:
        return who, None, []
    region, service = m.groups()
    account = header(headers, "x-moto-account-id") or DEFAULT_ACCOUNT
    target = header(headers, "x-amz-target") or ""
    body = body_json(entry) if service != "s3" else {}
    if service == "dynamodb":
        return who, "dynamodb", dynamodb_needs(target.rsplit(".", 1)[-1], body, region, account)
    if service == "sqs":
        op = target.rsplit(".", 1)[-1]
        op = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage"}.get(op, op)
        resource = queue_arn(region, body["QueueUrl"]) if "QueueUrl" in body else "*"
        return who, "sqs", [(f"sqs:{op}", resource)]
    if service == "ses":
        if url.path.rstrip("/").endswith("/outbound-emails"):
            sender = body.get("FromEmailAddress", "")
            identity = sender.rsplit("<", 1)[-1].rstrip(">").strip()
            arns = [f"arn:{PARTITION}:ses:{region}:{account}:identity/{identity}"]
            if "@" in identity:
                arns.append(f"arn:{PARTITION}:ses:{region}:{account}:identity/{identity.split('@', 1)[1]}")
            # Either identity (address or its domain) authorizes the send; the sender address
            # is the call's `ses:FromAddress`.
            return who, "ses", [("ses:SendEmail", tuple(arns), {"ses:fromaddress": identity})]
        return who, "ses", [(f"ses:{entry['method']}", "*")]
    if service == "s3":
        return who, "s3", s3.needs(entry["method"], url, headers, query, account)
    return who, service, [(f"{service}:*", "*")]


# --- the check ----------------------------------------------------------------------


def read_recording(text):
    """The recorded calls, one JSON object each. The emulator's threads append to one file,
    so a large entry can be split by another: what does not parse is skipped and counted."""
    decoder = json.JSONDecoder()
    entries, unreadable, i = [], 0, 0
    start = '{"headers"'
    while True:
        i = text.find(start, i)
        if i < 0:
            return entries, unreadable
        try:
            entry, end = decoder.raw_decode(text, i)
            entries.append(entry)
            i = end
        except ValueError:
            unreadable += 1
            i += len(start)


def read_env(path):
    return dict(line.split("=", 1) for line in Path(path).read_text().splitlines() if "=" in line)


def load_template(path=TEMPLATE):
    template, matches = decode(str(path))
    if matches:
        raise SystemExit(f"{path} does not parse: {matches}")
    return template


def check(template_dict, entries, region, stack_name):
    """(violations, usage, checked, skipped): violations map (function, action, resource)
    to a count; usage maps function -> set of (sid, action pattern, resource pattern)."""
    template = Template(template_dict, region, stack_name)
    functions = template.functions()
    by_account = {}
    violations = defaultdict(int)
    used = defaultdict(set)
    checked = skipped = 0
    unknown = defaultdict(int)
    s3 = S3Objects()
    for entry in entries:
        who, _service, needs = needs_of(entry, s3)
        if who is None:
            skipped += 1
            continue
        names = PRESIGNERS if who == "presigned" else [who]
        # On AWS the app name is the physical function name; locally the binary name.
        resolved = [n for n in functions if n in names or any(w.endswith(f"-{n}") or f"-{n}-" in w for w in names)]
        if not resolved:
            unknown[who] += 1
            continue
        name = resolved[0]
        account = header(entry["headers"], "x-moto-account-id") or DEFAULT_ACCOUNT
        key = (name, account)
        if key not in by_account:
            by_account[key] = grants(template, functions[name][1], account)
        checked += 1
        for action, resources, *context in needs:
            options = resources if isinstance(resources, tuple) else (resources,)
            outcomes = [decide(by_account[key], action, r, context[0] if context else None) for r in options]
            hit = next((g for ok, g in outcomes if ok), None)
            if hit is None:
                violations[(name, action, options[0])] += 1
            else:
                used[name].add(hit)
    for who, n in unknown.items():
        violations[(who, "(a function the template does not define)", "")] += n
    return violations, used, functions, checked, skipped, template


def unused_grants(functions, used, template):
    out = []
    for name, (_logical, statements) in functions.items():
        for g in grants(template, statements, DEFAULT_ACCOUNT):
            if g.effect != "Allow":
                continue
            for a, _ in g.actions:
                for r, _ in g.resources:
                    if (g.sid, a, r) not in used[name]:
                        out.append((name, g.sid, a, r))
    return out


def generalise(resource, account):
    return resource.replace(f":{account}:", ":ACCOUNT:") if account else resource


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    recording, env_file = Path(sys.argv[1]), read_env(sys.argv[2])
    template_path = Path(sys.argv[3]) if len(sys.argv) == 4 else TEMPLATE
    entries, unreadable = read_recording(recording.read_text())
    if unreadable:
        print(f"iam: {unreadable} recorded calls unreadable (written over each other) and not checked")
    violations, used, functions, checked, skipped, template = check(
        load_template(template_path), entries, env_file["AWS_REGION"], env_file["PORTAL_STACK_NAME"]
    )
    unused = unused_grants(functions, used, template)
    print(f"iam: {checked} calls of {len(used)} functions checked against their policies "
          f"({skipped} calls of the test harness not checked)")
    if unused:
        print(f"iam: {len(unused)} grants no test used:")
        for name, sid, action, resource in unused:
            print(f"  {name} {sid}: {action} on {resource}")
    if violations:
        print(f"iam: {len(violations)} calls the template does not allow:")
        for (name, action, resource), n in sorted(violations.items()):
            print(f"  {name}: {action} on {resource} ({n}x)")
        sys.exit(1)
    print("iam: every call allowed")


if __name__ == "__main__":
    main()
