"""Lab tests interleaved with each other and with a plain test, as suites grow in practice."""

# ruff: noqa: S101 - pytest's plain asserts are the point of a test file

from neops_remote_lab.models import DeviceInfoDto


def names(devices: list[DeviceInfoDto]) -> list[str]:
    return sorted(device.name for device in devices)


def test_two_routers(two_routers: list[DeviceInfoDto]) -> None:
    assert names(two_routers) == ["r1", "r2"]


def test_three_routers(three_routers: list[DeviceInfoDto]) -> None:
    assert names(three_routers) == ["r1", "r2", "r3"]


def test_two_routers_again(two_routers_again: list[DeviceInfoDto]) -> None:
    assert names(two_routers_again) == ["r1", "r2"]


def test_plain() -> None:
    assert True


def test_three_routers_mgmt(three_routers: list[DeviceInfoDto]) -> None:
    assert all(device.raw["mgmt"]["ipv4"] for device in three_routers)


def test_two_routers_mgmt(two_routers: list[DeviceInfoDto]) -> None:
    assert all(device.raw["mgmt"]["ipv4"] for device in two_routers)
