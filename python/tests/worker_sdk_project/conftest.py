"""A function-block project as Worker SDK users write it: a lab fixture declared in conftest.py."""

from neops_remote_lab.testing.fixture import remote_lab_fixture

two_routers = remote_lab_fixture("topology.yml", reuse_lab=True)
