"""Benchmark P6's sample suite: three lab fixtures over two distinct topology contents.

`two_routers.yml` and `two_routers_again.yml` are different files with identical bytes, so the
server sees one lab for both. The fixture declared in the middle has other content: a plugin
that ran fixtures strictly in declaration order would bring the two-router lab up twice.
"""

from pathlib import Path

from neops_remote_lab.testing.fixture import remote_lab_fixture

TOPOLOGIES = Path(__file__).parent / "topologies"

two_routers = remote_lab_fixture(TOPOLOGIES / "two_routers.yml", reuse_lab=True)
three_routers = remote_lab_fixture(TOPOLOGIES / "three_routers.yml", reuse_lab=True)
two_routers_again = remote_lab_fixture(TOPOLOGIES / "two_routers_again.yml", reuse_lab=True)
