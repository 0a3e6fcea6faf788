"""The OpenAPI document's own rules (scripts/check_openapi.py): every schema parses and
every $ref resolves, every string and array is bounded, every operation documents 429
and 503 (and its own 429 where the function limits), examples and demo data fit."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_openapi_document_keeps_its_rules():
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "check_openapi.py")], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "check_openapi: passed" in run.stdout
