"""Client and pytest plugin for a neops-remote-lab server.

A drop-in replacement for the public Python API of the original `neops-remote-lab` package:
`neops_remote_lab.client.RemoteLabClient`, `neops_remote_lab.testing.fixture.remote_lab_fixture`
and the `*Dto` models re-exported here; `LabDeclaration` (for `RemoteLabClient`'s `declare`) is new.
"""

from importlib.metadata import PackageNotFoundError, version

from ._lab_files import LabDeclaration
from .models import (
    AcquireResponseDto,
    ActiveSessionResponseDto,
    ClientInfoDto,
    CreateSessionResponseDto,
    DeclaredLabDto,
    DeviceInfoDto,
    LabStatusDto,
    QueuedSessionDto,
    SessionInfoDto,
    SessionsDto,
    SessionState,
    SessionStatusResponseDto,
    SlotDto,
)

try:
    __version__ = version("neops-remote-lab")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = [
    "AcquireResponseDto",
    "ActiveSessionResponseDto",
    "ClientInfoDto",
    "CreateSessionResponseDto",
    "DeclaredLabDto",
    "DeviceInfoDto",
    "LabDeclaration",
    "LabStatusDto",
    "QueuedSessionDto",
    "SessionInfoDto",
    "SessionState",
    "SessionStatusResponseDto",
    "SessionsDto",
    "SlotDto",
    "__version__",
]
