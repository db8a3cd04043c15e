"""A function block that reports the devices the Worker SDK hands it from a remote lab.

`fb_test_case_with_lab` generates the test `test_readdevices_reads_the_lab_devices`: it takes
the `two_routers` lab fixture, turns each `DeviceInfoDto` into a neops device (host and ip
from `mgmt.ipv4`, username from `ansible_user`, vendor from `ansible_network_os`) and runs
the block with them in its context.
"""

from neops_worker_sdk.function_block.function_block import (
    FunctionBlock,
    FunctionBlockAcquireResult,
    FunctionBlockParams,
    FunctionBlockResult,
    FunctionBlockResultData,
)
from neops_worker_sdk.testing.base.function_block_test_case import fb_test_case_with_lab

# What netlab's external provider gives two eos nodes: management addresses from
# 192.168.121.0/24 in node order, eos' default Ansible user.
EXPECTED = [
    {"host": "192.168.121.101", "ip": "192.168.121.101", "username": "vagrant", "vendor": "eos"},
    {"host": "192.168.121.102", "ip": "192.168.121.102", "username": "vagrant", "vendor": "eos"},
]


class NoParams(FunctionBlockParams):
    pass


class SeenDevices(FunctionBlockResultData):
    devices: list[dict[str, str]]


@fb_test_case_with_lab(
    "reads the lab devices",
    NoParams(),
    remote_lab_fixture="two_routers",
    expected_result_data=SeenDevices(devices=EXPECTED),
)
class ReadDevices(FunctionBlock[NoParams, SeenDevices]):
    async def run(self, params, context):
        seen = [
            {"host": d.hostname, "ip": d.ip, "username": d.username, "vendor": d.vendor}
            for d in sorted(context.devices, key=lambda d: d.ip)
        ]
        return FunctionBlockResult(success=True, message="read", data=SeenDevices(devices=seen))

    async def acquire(self, params):
        return FunctionBlockAcquireResult(success=True, message="nothing to acquire")
