"""API fuzzing from the OpenAPI document with schemathesis, against the served local stack.

    python scripts/fuzz.py BASE_URL ENV_FILE [SECONDS]

Runs every operation twice — without a session and with a valid one (a session opened
directly in the stack's session table for a test login of customer 1000003) — and fails
on any 5xx, any status or content type the document does not list, any body that does not
match its schema, and any invalid request (unknown fields, wrong types) that is not
refused. Bounded in time. `scripts/test` runs it after the Rust tests.

The OpenAPI document references the schema files in `schemas/`; their `$id`s are URLs that
are not served anywhere, so the document is bundled into one file (every schema a
component) first.
"""

import datetime
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "schemas"


def bundle() -> dict:
    doc = json.loads((SCHEMAS / "openapi.json").read_text())
    components = doc.setdefault("components", {}).setdefault("schemas", {})

    def name_of(path: Path) -> str:
        rel = path.relative_to(SCHEMAS).as_posix().removesuffix(".schema.json")
        return rel.replace("/", "_").replace(".", "_")

    def load(path: Path) -> str:
        name = name_of(path)
        if name not in components:
            components[name] = {}  # placeholder: breaks cycles
            schema = json.loads(path.read_text())
            schema.pop("$id", None)
            schema.pop("$schema", None)
            components[name] = rewrite(schema, path.parent)
        return name

    def rewrite(node, base: Path):
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str) and not value.startswith("#"):
                    file, _, fragment = value.partition("#")
                    target = load((base / file).resolve())
                    out[key] = f"#/components/schemas/{target}{fragment}"
                elif key == "$ref" and isinstance(value, str) and value.startswith("#/$defs"):
                    # A local ref inside a schema file: relative to that file's component.
                    out[key] = value  # resolved below, once the component name is known
                else:
                    out[key] = rewrite(value, base)
            return out
        if isinstance(node, list):
            return [rewrite(v, base) for v in node]
        return node

    doc = rewrite(doc, SCHEMAS)
    doc["components"]["schemas"] = components

    # Local `#/$defs/...` refs of a schema file point into its own component.
    def localize(node, component: str):
        if isinstance(node, dict):
            for key, value in list(node.items()):
                if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs"):
                    node[key] = f"#/components/schemas/{component}{value[1:]}"
                else:
                    localize(value, component)
        elif isinstance(node, list):
            for v in node:
                localize(v, component)

    for name, schema in components.items():
        localize(schema, name)
    return doc


def read_env(path: str) -> dict:
    env = {}
    for line in Path(path).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            env[key] = value
    return env


def open_session(env: dict) -> str:
    """A session for a test login of customer 1000003, written straight into the table."""
    token = secrets.token_urlsafe(32)
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    table = boto3.resource(
        "dynamodb",
        endpoint_url=env.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
        region_name=env.get("AWS_REGION", "eu-central-1"),
        aws_access_key_id="test",
        aws_secret_access_key="test",
    ).Table(env["TABLE_SESSIONS"])
    table.put_item(
        Item={
            "tokenHash": hashlib.sha256(token.encode()).hexdigest(),
            "loginId": "L-FUZZ",
            "partnerNumbers": ["1000003"],
            "mustChangePassword": False,
            "createdAt": stamp,
            "lastSeenAt": stamp,
            "expiresAt": int(now.timestamp()) + 3600,
        }
    )
    return token


def main() -> int:
    base_url, env_file = sys.argv[1], sys.argv[2]
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 60
    env = read_env(env_file)
    # Outside the workspace: a file written inside it would make `cargo lambda watch` restart.
    work = Path(tempfile.mkdtemp(prefix="evi-portal-fuzz-"))
    bundled = work / "openapi.bundled.json"
    bundled.write_text(json.dumps(bundle(), ensure_ascii=False, indent=1))

    checks = ",".join(
        [
            "not_a_server_error",
            "status_code_conformance",
            "content_type_conformance",
            "response_schema_conformance",
            "negative_data_rejection",
        ]
    )
    # A body over the functions' 16 KiB limit is refused with 413 before its schema is read:
    # that is a rejection too (schemathesis' list lacks it).
    config = work / "schemathesis.toml"
    config.write_text(
        "[checks.negative_data_rejection]\n"
        'expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]\n'
    )
    common = [
        str(ROOT / ".venv/bin/st"), "--config-file", str(config), "run", str(bundled), "--url", base_url,
        "--checks", checks,
        "--max-time", str(seconds), "--workers", "1", "--request-timeout", "10", "--seed", "20261201",
        "--no-color", "--phases", "examples,coverage,fuzzing", "--max-examples", "20",
        "--suppress-health-check", "all", "--warnings", "off", "--generation-codec", "utf-8",
        "--report", "junit", "--report-dir", str(work), "--generation-database", "none",
    ]
    runs = [
        ("without a session", []),
        (
            "with a session",
            # Logout and account deletion would end the session the run depends on.
            ["-H", f"Authorization: Bearer {open_session(env)}",
             "--exclude-path", "/v1/sessions/current", "--exclude-path", "/v1/me"],
        ),
    ]
    failed = False
    for label, extra in runs:
        print(f"fuzzing {label} ...", flush=True)
        hooks = {"SCHEMATHESIS_HOOKS": "fuzz_hooks", "PYTHONPATH": str(ROOT / "scripts"), "PYTHONDONTWRITEBYTECODE": "1"}
        # Run outside the workspace: anything written inside it restarts the local functions.
        result = subprocess.run(common + extra, env={**os.environ, **hooks}, cwd=work)
        failed |= result.returncode != 0
    print("fuzz: " + ("FAILED" if failed else "passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
