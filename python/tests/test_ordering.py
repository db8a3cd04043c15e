"""Test order, grouping and the order report, seen through collection (no server needed)."""

from __future__ import annotations

import pytest

LAB_ORDER = ["test_device_data", "test_two_routers_again", "test_twin", "test_three_routers"]
PLAIN_ORDER = ["test_plain_declared_first", "test_queue_handed_on"]


def collected(result: pytest.RunResult) -> list[str]:
    return [line.split("::")[-1] for line in result.outlines if line.startswith("test_sample.py::")]


def test_lab_tests_run_first_grouped_by_topology_content(consumer: pytest.Pytester):
    result = consumer.runpytest_subprocess("--collect-only", "-q")
    assert result.ret == 0, result.stdout.str()
    # two_routers and twin_routers have identical bytes: one group, declared first.
    assert collected(result) == LAB_ORDER + PLAIN_ORDER


def test_client_only_tests_run_before_plain_tests(consumer: pytest.Pytester):
    consumer.makepyfile(test_client_only="def test_uses_client(remote_lab_client):\n    pass\n")
    result = consumer.runpytest_subprocess("--collect-only", "-q", "test_sample.py", "test_client_only.py")
    assert result.ret == 0, result.stdout.str()
    order = [line.split("::")[-1] for line in result.outlines if "::" in line]
    assert order == [*LAB_ORDER, "test_uses_client", *PLAIN_ORDER]


def test_order_report_at_verbose(consumer: pytest.Pytester):
    result = consumer.runpytest_subprocess("--collect-only", "-v")
    result.stdout.fnmatch_lines(
        [
            "remote lab test order:",
            "  two_routers: two_routers.yml, lab *, reuses a running lab",
            "    test_sample.py::test_device_data",
            "    test_sample.py::test_two_routers_again",
            "  two_routers_copy: two_routers_copy.yml, lab *, reuses a running lab",
            "    test_sample.py::test_twin",
            "  three_routers: three_routers.yml, lab *, fresh lab",
            "    test_sample.py::test_three_routers",
            "  then 2 tests without a lab fixture",
        ]
    )


def test_no_order_report_without_verbose(consumer: pytest.Pytester):
    result = consumer.runpytest_subprocess("--collect-only", "-q")
    assert "remote lab test order" not in result.stdout.str()


def test_two_lab_fixtures_in_one_test_fail_collection(consumer: pytest.Pytester):
    consumer.makepyfile(test_both="def test_both(two_routers, three_routers):\n    pass\n")
    result = consumer.runpytest_subprocess("--collect-only")
    assert result.ret != 0
    output = result.stdout.str() + result.stderr.str()
    assert "ValueError" in output
    assert "test_both.py::test_both uses several remote lab fixtures (two_routers, three_routers)" in output


def test_plugin_can_be_disabled(consumer: pytest.Pytester):
    result = consumer.runpytest_subprocess("--collect-only", "-q", "-p", "no:neops-remote-lab")
    # Without the plugin nothing is reordered and the lab fixtures miss their client fixture.
    assert collected(result)[0] == "test_plain_declared_first"
