"""Wire types of the session queue routes."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, Field


class SessionState(str, Enum):
    """Where a session stands in the FIFO queue: only the head is ACTIVE."""

    WAITING = "waiting"
    ACTIVE = "active"


class SessionInfoDto(BaseModel):
    """A queue entry as the original server kept it; no route returns it, kept so imports keep working."""

    id: str
    status: SessionState
    position: int = Field(description="0 is the head of the queue")
    created_at: float = Field(description="Creation time, seconds since the Unix epoch")
    last_seen_at: float = Field(description="Last request carrying this session, seconds since the Unix epoch")
    topology_name: str | None = None


class CreateSessionResponseDto(BaseModel):
    """Answer of `POST /session`."""

    session_id: str
    position: int = Field(description="Queue length before this session was added; 0 means ACTIVE at once")


class SessionStatusResponseDto(BaseModel):
    """Answer of `GET /session/{id}`."""

    status: SessionState
    position: int = Field(description="0 is the head of the queue")


class ActiveSessionResponseDto(SessionStatusResponseDto):
    """Answer of `GET /active-session`."""

    session_id: str
