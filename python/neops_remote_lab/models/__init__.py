"""Pydantic models of everything the server sends (names kept from the original package)."""

from .lab import AcquireResponseDto, DeviceInfoDto, LabStatusDto
from .session import (
    ActiveSessionResponseDto,
    CreateSessionResponseDto,
    SessionInfoDto,
    SessionState,
    SessionStatusResponseDto,
)

__all__ = [
    "AcquireResponseDto",
    "ActiveSessionResponseDto",
    "CreateSessionResponseDto",
    "DeviceInfoDto",
    "LabStatusDto",
    "SessionInfoDto",
    "SessionState",
    "SessionStatusResponseDto",
]
