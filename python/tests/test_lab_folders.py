"""Whole lab folders through `remote_lab_fixture`, brought up by real netlab."""

from __future__ import annotations

import pytest
from server_process import LabServer

# gw1 names a custom configuration template: netlab refuses the topology when it is missing.
GATEWAY_LAB = "nodes:\n  gw1:\n    config: [extra/gw1.j2]\n  r2:\nlinks: [gw1-r2]\n"
TEMPLATE = "hostname {{ inventory_hostname }}\n"
FIXTURES = "from neops_remote_lab.testing.fixture import remote_lab_fixture\n\n"
USES = [("a", "first"), ("b", "second"), ("c", "again")]
CHECK_GATEWAY = """
def test_gateway(gateway_lab):
    assert [device.name for device in gateway_lab] == ["gw1", "r2"]
    gw1 = gateway_lab[0]
    assert gw1.raw["config"] == ["extra/gw1.j2"]
    assert gw1.raw["ansible_network_os"] == "eos"
"""


def project(pytester: pytest.Pytester, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_template_in_a_sub_folder(pytester: pytest.Pytester, lab_server: LabServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("REMOTE_LAB_URL", lab_server.url)
    project(
        pytester,
        {
            "lab/topology.yml": "defaults.device: eos\n" + GATEWAY_LAB,
            "lab/extra/gw1.j2": TEMPLATE,
            "conftest.py": (
                FIXTURES + 'gateway_lab = remote_lab_fixture("lab/topology.yml", extra_files=["extra"])\n'
                'without_template = remote_lab_fixture("lab/topology.yml", name="bare")\n'
            ),
            "test_lab.py": CHECK_GATEWAY + "\n\ndef test_without_template(without_template):\n    pass\n",
        },
    )
    result = pytester.runpytest_subprocess("-v", timeout=600)
    # Without its template the same topology is netlab's error, reported at once.
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["E *LabBringUpError: POST /lab failed with HTTP 502: *", "E *Cannot find extra/gw1.j2 *"]
    )


def test_defaults_two_folders_up(pytester: pytest.Pytester, lab_server: LabServer, monkeypatch: pytest.MonkeyPatch):
    """A lab in a collection: `../../defaults.yml` sets the device type; needs a server that takes lab folders."""
    monkeypatch.setenv("REMOTE_LAB_URL", lab_server.url)
    project(
        pytester,
        {
            "collection/defaults.yml": "device: eos\n",
            "collection/labs/basic/topology.yml": "defaults.sources.extra: [../../defaults.yml]\n" + GATEWAY_LAB,
            "collection/labs/basic/extra/gw1.j2": TEMPLATE,
            "conftest.py": (
                FIXTURES + "gateway_lab = remote_lab_fixture(\n"
                '    "collection/labs/basic/topology.yml", extra_files=["extra", "../../defaults.yml"]\n'
                ")\n"
            ),
            "test_lab.py": CHECK_GATEWAY,
        },
    )
    result = pytester.runpytest_subprocess("-v", timeout=600)
    result.assert_outcomes(passed=1)


def test_fixtures_differing_only_in_a_template_are_different_labs(pytester: pytest.Pytester):
    project(
        pytester,
        {
            "lab/topology.yml": "defaults.device: eos\n" + GATEWAY_LAB,
            "lab/extra/gw1.j2": TEMPLATE,
            "lab/other/gw1.j2": "hostname other\n",
            "conftest.py": FIXTURES
            + 'first = remote_lab_fixture("lab/topology.yml", extra_files=["extra"], reuse_lab=True)\n'
            + 'second = remote_lab_fixture("lab/topology.yml", name="second", extra_files=["other"], reuse_lab=True)\n'
            + 'again = remote_lab_fixture("lab/topology.yml", name="again", extra_files=["extra"], reuse_lab=True)\n',
            "test_lab.py": "".join(f"def test_{x}({fixture}):\n    pass\n\n" for x, fixture in USES),
        },
    )
    result = pytester.runpytest_subprocess("--collect-only", "-v")
    # `again` has the same files as `first`: one group, one lab; `second` is another lab.
    result.stdout.fnmatch_lines(
        [
            "remote lab test order:",
            "  topology: topology.yml, lab *, reuses a running lab",
            "    test_lab.py::test_a",
            "  again: topology.yml, lab *, reuses a running lab",
            "    test_lab.py::test_c",
            "  second: topology.yml, lab *, reuses a running lab",
            "    test_lab.py::test_b",
        ]
    )
