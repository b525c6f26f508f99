"""Property-based fuzzing of the live API from its own OpenAPI document (schemathesis)."""
from __future__ import annotations

import re
import subprocess

import pytest

from .harness import VENV_BIN

# Fixed seed and example count: the same requests on every run, well under two minutes.
SEED = 20240501
MAX_EXAMPLES = 100
TIME_LIMIT_S = 120
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


@pytest.mark.blackbox
def test_schemathesis_finds_no_server_error_and_no_schema_violation(base_url, tmp_path):
    command = [
        str(VENV_BIN / "schemathesis"), "--no-color", "run", f"{base_url}/openapi.json",
        "--checks", CHECKS,
        "--seed", str(SEED),
        "--max-examples", str(MAX_EXAMPLES),
        "--phases", "examples,coverage,fuzzing,stateful",
        # One worker: Python 3.11 before 3.11.8 counts AST recursion in state shared by
        # threads (CPython gh-106905), so schemathesis workers can crash each other's
        # ast.parse ("AST constructor recursion depth mismatch").
        "--workers", "1",
        "--request-timeout", "15",
        "--generation-database", "none",
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=TIME_LIMIT_S)
    assert result.returncode == 0, f"schemathesis exit {result.returncode}:\n{result.stdout[-20000:]}"
    tested = re.search(r"Tested: (\d+)", result.stdout)
    assert tested and int(tested.group(1)) >= 4, result.stdout
