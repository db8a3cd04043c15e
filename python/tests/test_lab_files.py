"""Which files a lab upload holds and under which names (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from neops_remote_lab._lab_files import LabFiles


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    """A lab collection: shared defaults two folders above a lab with a template folder."""
    (tmp_path / "defaults.yml").write_text("device: eos\n")
    lab = tmp_path / "labs" / "basic"
    (lab / "extra").mkdir(parents=True)
    (lab / "topology.yml").write_text("nodes: [r1]\n")
    (lab / "extra" / "gw1.j2").write_text("hostname gw1\n")
    (lab / "extra" / "deep").mkdir()
    (lab / "extra" / "deep" / "r1.j2").write_text("hostname r1\n")
    return tmp_path


def names(lab: LabFiles) -> list[str]:
    return [name for name, _ in lab.extra]


def test_files_inside_the_topology_folder_keep_the_topology_at_the_root(collection: Path):
    lab = LabFiles.collect(collection / "labs/basic/topology.yml", ["extra"])
    assert lab.root == collection / "labs" / "basic"
    assert lab.topology_name == "topology.yml"
    assert names(lab) == ["extra/deep/r1.j2", "extra/gw1.j2"]


def test_a_file_two_folders_up_moves_the_root_to_their_common_parent(collection: Path):
    lab = LabFiles.collect(collection / "labs/basic/topology.yml", ["extra/gw1.j2", "../../defaults.yml"])
    assert lab.root == collection
    assert lab.topology_name == "labs/basic/topology.yml"
    assert names(lab) == ["labs/basic/extra/gw1.j2", "defaults.yml"]


def test_an_explicit_root_names_every_file_from_there(collection: Path):
    lab = LabFiles.collect(collection / "labs/basic/topology.yml", ["extra/gw1.j2"], root="../..")
    assert lab.topology_name == "labs/basic/topology.yml"
    assert names(lab) == ["labs/basic/extra/gw1.j2"]


def test_a_listed_folder_holding_the_topology_does_not_send_it_twice(collection: Path):
    lab = LabFiles.collect(collection / "labs/basic/topology.yml", ["."])
    assert names(lab) == ["extra/deep/r1.j2", "extra/gw1.j2"]


def test_multipart_names_and_bytes(collection: Path):
    lab = LabFiles.collect(collection / "labs/basic/topology.yml", ["../../defaults.yml"])
    assert lab.multipart() == [
        ("topology", ("labs/basic/topology.yml", b"nodes: [r1]\n", "application/x-yaml")),
        ("extra_files", ("defaults.yml", b"device: eos\n", "application/octet-stream")),
    ]


def test_missing_files_and_files_outside_the_root_are_refused(collection: Path):
    topology = collection / "labs/basic/topology.yml"
    with pytest.raises(FileNotFoundError, match=r"nope\.yml"):
        LabFiles.collect(collection / "nope.yml")
    with pytest.raises(FileNotFoundError, match=r"missing\.j2"):
        LabFiles.collect(topology, ["extra/missing.j2"])
    with pytest.raises(ValueError, match="outside the upload's root"):
        LabFiles.collect(topology, ["../../defaults.yml"], root=".")


def test_digest_covers_every_file_but_not_the_topology_name(collection: Path):
    topology = collection / "labs/basic/topology.yml"
    renamed = topology.with_name("renamed.yml")
    renamed.write_bytes(topology.read_bytes())
    before = LabFiles.collect(topology, ["extra"]).digest()
    assert LabFiles.collect(renamed, ["extra"]).digest() == before
    assert LabFiles.collect(topology).digest() != before
    (collection / "labs/basic/extra/gw1.j2").write_text("hostname changed\n")
    assert LabFiles.collect(topology, ["extra"]).digest() != before
