"""Client info: what `RemoteLabClient` tells the server about who is asking."""

from __future__ import annotations

import socket

import pytest
import requests
from server_process import LabServer

from neops_remote_lab.client import RemoteLabClient
from neops_remote_lab.client_info import CLIENT_INFO_LIMITS, ci_job_url, fit_client_info
from neops_remote_lab.models import ClientInfoDto, SessionsDto

GITHUB = {"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/labs", "GITHUB_RUN_ID": "42"}


def client_seen_by(server: LabServer, session_id: str) -> ClientInfoDto | None:
    """The client info `GET /sessions` shows for `session_id`."""
    overview = SessionsDto.model_validate(requests.get(f"{server.url}/sessions", timeout=10).json())
    (entry,) = (entry for entry in overview.sessions if entry.id == session_id[:8])
    return entry.client


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {"CI_JOB_URL": "https://gitlab.example.com/g/p/-/jobs/7", **GITHUB},
            "https://gitlab.example.com/g/p/-/jobs/7",
        ),
        (
            {**GITHUB, "BUILD_URL": "https://jenkins.example.com/job/x/3/"},
            "https://github.com/acme/labs/actions/runs/42",
        ),
        (
            {"GITHUB_SERVER_URL": "https://github.com", "BUILD_URL": "https://jenkins.example.com/job/x/3/"},
            "https://jenkins.example.com/job/x/3/",
        ),
        ({}, None),
    ],
    ids=["gitlab", "github", "jenkins", "none"],
)
def test_ci_job_url_from_common_ci_variables(environ: dict[str, str], expected: str | None):
    assert ci_job_url(environ) == expected


def test_client_info_is_fitted_to_the_servers_limits():
    fitted = fit_client_info(
        {"user": " ada\n", "host": "h" * 300, "label": "x\x1b[1m" + "y" * 600, "ci_job_url": "ftp://x", "extra": "z"}
    )
    assert fitted["user"] == "ada"
    assert len(fitted["host"]) == CLIENT_INFO_LIMITS["host"]
    assert fitted["host"].endswith("…")
    assert fitted["label"].startswith("xy")
    assert len(fitted["label"]) == CLIENT_INFO_LIMITS["label"]
    assert set(fitted) == {"user", "host", "label"}
    assert fit_client_info({"ci_job_url": "https://ci.example.com/a b"}) == {}
    assert fit_client_info({"ci_job_url": "https://ci.example.com/" + "j" * 2048}) == {}


def test_server_sees_who_is_asking_from_the_environment(lab_server: LabServer, monkeypatch: pytest.MonkeyPatch):
    for name in ("LOGNAME", "LNAME", "USERNAME", *GITHUB, "BUILD_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("USER", "ada")
    monkeypatch.setenv("CI_JOB_URL", "https://gitlab.example.com/group/labs/-/jobs/4711")

    with RemoteLabClient(lab_server.url, heartbeat_interval=0) as client:
        seen = client_seen_by(lab_server, client.session_id)
    assert seen == ClientInfoDto(
        user="ada", host=socket.gethostname(), ci_job_url="https://gitlab.example.com/group/labs/-/jobs/4711"
    )


def test_client_info_beyond_the_limits_is_accepted_and_empty_sends_none(lab_server: LabServer):
    too_much = {"user": "u" * 100, "host": "ci\trunner", "label": "pytest -m lab " + "é" * 600}
    with RemoteLabClient(lab_server.url, heartbeat_interval=0, client_info=too_much) as client:
        seen = client_seen_by(lab_server, client.session_id)
    assert seen is not None
    assert seen.host == "ci runner"
    assert seen.user == "u" * 63 + "…"
    assert seen.label is not None
    assert seen.label.startswith("pytest -m lab é")
    assert len(seen.label) == CLIENT_INFO_LIMITS["label"]

    with RemoteLabClient(lab_server.url, heartbeat_interval=0, client_info={}) as client:
        assert client_seen_by(lab_server, client.session_id) is None
