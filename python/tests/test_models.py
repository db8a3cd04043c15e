"""The public names of the original package, importable from the same places."""

from __future__ import annotations

import neops_remote_lab
from neops_remote_lab.client import RemoteLabClient
from neops_remote_lab.models import (
    AcquireResponseDto,
    ActiveSessionResponseDto,
    DeviceInfoDto,
    SessionState,
    SessionStatusResponseDto,
)
from neops_remote_lab.testing import pytest_order_plugin
from neops_remote_lab.testing.fixture import REMOTE_LAB_FIXTURE_META, REMOTE_LAB_ORDER


def test_package_reexports_models_and_version():
    for name in neops_remote_lab.models.__all__:
        assert getattr(neops_remote_lab, name) is getattr(neops_remote_lab.models, name)
    assert neops_remote_lab.__version__


def test_order_plugin_shares_the_registries():
    assert pytest_order_plugin.REMOTE_LAB_ORDER is REMOTE_LAB_ORDER
    assert pytest_order_plugin.REMOTE_LAB_FIXTURE_META is REMOTE_LAB_FIXTURE_META


def test_acquire_answer_parses_device_host_view():
    answer = AcquireResponseDto.model_validate(
        {
            "reused": False,
            "devices": [{"name": "r1", "raw": {"mgmt": {"ipv4": "192.168.121.101"}, "ansible_user": "admin"}}],
        }
    )
    raw = {"mgmt": {"ipv4": "192.168.121.101"}, "ansible_user": "admin"}
    assert answer.devices == [DeviceInfoDto(name="r1", raw=raw)]


def test_session_answers_parse():
    assert SessionStatusResponseDto.model_validate({"status": "waiting", "position": 2}).status is SessionState.WAITING
    active = ActiveSessionResponseDto.model_validate({"session_id": "abc", "status": "active", "position": 0})
    assert active.status is SessionState.ACTIVE


def test_client_keeps_the_original_constructor():
    assert list(RemoteLabClient.__init__.__code__.co_varnames[1:5]) == [
        "base_url",
        "request_timeout",
        "session_timeout",
        "lab_acquisition_timeout",
    ]
    assert RemoteLabClient.__init__.__defaults__ == (30, 600, 600)
