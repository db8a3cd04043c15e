"""What users' configuration relies on: the registered marker, the logger names, a session reopened after closing."""

from __future__ import annotations

import pytest
from server_process import LabServer

from neops_remote_lab.testing.lab_session import LabSession


def test_remote_lab_marker_is_registered(consumer: pytest.Pytester):
    # The Worker SDK marks its generated lab tests `remote_lab`; --strict-markers refuses unknown markers.
    consumer.makepyfile(test_marked="import pytest\n\n@pytest.mark.remote_lab\ndef test_marked():\n    pass\n")
    result = consumer.runpytest_subprocess("--strict-markers", "test_marked.py")
    result.assert_outcomes(passed=1)


def test_plugin_logs_under_the_original_logger_name(consumer: pytest.Pytester):
    result = consumer.runpytest_subprocess("--collect-only", "-q", "--log-cli-level=DEBUG")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*remote-lab-plugin*Run order: test_sample.py::test_device_data, *"])


def test_a_closed_session_is_not_reused(
    request: pytest.FixtureRequest, lab_server: LabServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("REMOTE_LAB_URL", lab_server.url)
    lab_session = LabSession(request.config)
    first = lab_session.open_client()
    lab_session.close_client()
    second = lab_session.open_client()
    try:
        assert second is not first
        assert second.session_id
        assert lab_server.active_session() == second.session_id
    finally:
        lab_session.shutdown()
    assert lab_server.health()["sessions"] == 0
