"""A consumer project as Worker SDK users write it: lab fixtures declared in conftest.py."""

from neops_remote_lab.testing.fixture import remote_lab_fixture

two_routers = remote_lab_fixture("topologies/two_routers.yml", reuse_lab=True)
three_routers = remote_lab_fixture("topologies/three_routers.yml")
# Same bytes as two_routers.yml under another name: grouped with it, one bring-up for both.
# The attribute name differs from the file stem on purpose.
twin_routers = remote_lab_fixture("topologies/two_routers_copy.yml", reuse_lab=True)
