"""schemathesis fuzzes the API from its own OpenAPI document (issue 11): no 5xx, and every
answer conforms to the document (status codes, headers, content types, bodies).

It runs schemathesis' command line against a real ``correspondance serve``, bounded in
examples and time (about two minutes on a shared two-core machine).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from perimeter_helpers import serve

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)


@pytest.mark.slow
def test_schemathesis_finds_no_5xx_and_no_deviation_from_the_spec(tmp_path: Path) -> None:
    with serve(tmp_path) as served:
        result = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                "run",
                f"{served.url}/openapi.json",
                "--checks",
                CHECKS,
                "--max-examples",
                "8",
                "--max-time",
                "100",
                "--workers",
                "1",
                "--request-timeout",
                "30",
                "--seed",
                "20261202",
                "--generation-database",
                "none",
                "--no-color",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    summary = result.stdout[-8000:]
    assert result.returncode == 0, summary
    generated = re.search(r"(\d+) generated", summary)
    assert generated is not None, summary
    assert int(generated.group(1)) >= 50, summary  # it really ran cases
