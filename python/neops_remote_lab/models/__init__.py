"""Pydantic models of everything the server sends (names kept from the original package)."""

from .lab import AcquireResponseDto, DeviceInfoDto, LabStatusDto
from .session import (
    ActiveSessionResponseDto,
    ClientInfoDto,
    CreateSessionResponseDto,
    DeclaredLabDto,
    QueuedSessionDto,
    SessionInfoDto,
    SessionsDto,
    SessionState,
    SessionStatusResponseDto,
    SlotDto,
)

__all__ = [
    "AcquireResponseDto",
    "ActiveSessionResponseDto",
    "ClientInfoDto",
    "CreateSessionResponseDto",
    "DeclaredLabDto",
    "DeviceInfoDto",
    "LabStatusDto",
    "QueuedSessionDto",
    "SessionInfoDto",
    "SessionState",
    "SessionStatusResponseDto",
    "SessionsDto",
    "SlotDto",
]
