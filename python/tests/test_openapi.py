"""The OpenAPI document is valid OpenAPI 3.1 and true to the server.

`openapi-spec-validator` checks the document; a bounded schemathesis run sends generated
requests to every operation of a real server (real netlab) and checks that none gets a 5xx
and that every answer matches the documented status codes and schemas. A second, stateful run
chains requests along the document's links (a created session's id into its status and end)
while every request carries an active session's `X-Session-ID`, so the lab routes are
reached past their gate.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests
from openapi_spec_validator import validate
from server_process import LabServer


def test_the_document_is_valid_openapi_3_1(lab_server: LabServer) -> None:
    document = requests.get(f"{lab_server.url}/openapi.json", timeout=30).json()
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises with the first violation
    operation_ids = [op["operationId"] for path in document["paths"].values() for op in path.values()]
    assert len(operation_ids) == len(set(operation_ids)), operation_ids


def schemathesis(lab_server: LabServer, workdir: Path, *args: str) -> None:
    """Run schemathesis against `lab_server` with our checks in `workdir`; fail with its report."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{lab_server.url}/openapi.json",
            # An event stream never ends; its answers are covered by tests/live_events.rs.
            "--exclude-path",
            "/events",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--seed",
            "1",
            # A long-poll on a live session may take its full 60 s.
            "--request-timeout",
            "90",
            *args,
        ],
        # schemathesis keeps its cache (crashes it found, to replay) in `.schemathesis/` below the
        # working directory: a fresh one per run, so the run is the same every time and the
        # checkout stays clean.
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


def test_generated_requests_get_no_5xx_and_documented_answers(lab_server: LabServer, tmp_path: Path) -> None:
    # Bounded: a few examples per operation.
    schemathesis(lab_server, tmp_path, "--max-examples", "15", "--phases", "examples,coverage,fuzzing")


def test_stateful_sequences_with_an_active_session_get_documented_answers(
    lab_server: LabServer, tmp_path: Path
) -> None:
    created = requests.post(f"{lab_server.url}/session", timeout=30)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["position"] == 0, body  # the front of the line: active
    # Every request carries the active session's id: the lab routes answer past their gate
    # (fuzzing), and linked sequences run beside it (stateful). Bounded: few steps. The sessions
    # the run creates wait behind the active one, so a long-poll of theirs would take its full
    # 60 s: the status route, fuzzed by the run above, is left out here.
    schemathesis(
        lab_server,
        tmp_path,
        *("--phases", "fuzzing,stateful", "--max-examples", "5"),
        *("--exclude-operation-id", "session_status"),
        *("-H", f"X-Session-ID: {body['session_id']}"),
    )
