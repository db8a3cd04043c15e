"""Lab tests and plain tests, deliberately interleaved: the plugin reorders them."""

import os

from neops_remote_lab.client import RemoteLabClient


def test_plain_declared_first():
    assert True


def test_three_routers(three_routers):
    assert sorted(device.name for device in three_routers) == ["r1", "r2", "r3"]


def test_device_data(two_routers):
    assert sorted(device.name for device in two_routers) == ["r1", "r2"]
    for device in two_routers:
        assert device.raw["mgmt"]["ipv4"]
        assert device.raw["ansible_network_os"] == "eos"
        assert device.raw["ansible_user"]


def test_twin(twin_routers):
    assert len(twin_routers) == 2


def test_two_routers_again(two_routers):
    assert len(two_routers) == 2


def test_queue_handed_on():
    """Runs after every lab test: this run's session is closed, so a newcomer is ACTIVE at once."""
    with RemoteLabClient(os.environ["REMOTE_LAB_URL"], session_timeout=60) as newcomer:
        assert newcomer.session_id
