"""`remote_lab_fixture` at declaration time, as the original package behaves."""

from __future__ import annotations

from pathlib import Path

import pytest
from server_process import TOPOLOGIES

from neops_remote_lab.testing.fixture import REMOTE_LAB_FIXTURE_META, REMOTE_LAB_ORDER, remote_lab_fixture


def test_missing_topology_fails_at_declaration(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"nope\.yml"):
        remote_lab_fixture(tmp_path / "nope.yml")


def test_declaration_registers_name_rank_and_meta(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("REMOTE_LAB_URL", "http://lab.example:8000")
    first = remote_lab_fixture(TOPOLOGIES / "two_routers.yml", name="declared_first")
    second = remote_lab_fixture(TOPOLOGIES / "three_routers.yml", name="declared_second", reuse_lab=True)

    assert REMOTE_LAB_ORDER["declared_first"] < REMOTE_LAB_ORDER["declared_second"]
    meta = REMOTE_LAB_FIXTURE_META["declared_second"]
    assert meta["rank"] == REMOTE_LAB_ORDER["declared_second"]
    assert meta["reuse"] is True
    assert meta["remote"] is True
    assert str(meta["topology"]).endswith("three_routers.yml")
    assert first.__name__ == "declared_first"
    assert second.__name__ == "declared_second"


def test_name_defaults_to_the_file_stem():
    remote_lab_fixture(TOPOLOGIES / "two_routers_copy.yml")
    assert "two_routers_copy" in REMOTE_LAB_ORDER
