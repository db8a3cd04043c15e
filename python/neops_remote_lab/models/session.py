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
    declared_labs: list[str] = Field(
        default_factory=list,
        description="Identities (SHA-256 hex) of the labs the session declared it will ask for, in declaration "
        "order (`POST /session/{id}/labs`); always empty from servers without that route (the original 1.4.0)",
    )


class DeclaredLabDto(BaseModel):
    """Answer of `POST /session/{id}/labs`: the lab the session declared it will ask for."""

    identity: str = Field(
        description="The lab's identity, SHA-256 hex over its files: the one `POST /lab` gives the same upload "
        "(`GET /sessions` shows its first 12 digits for a running lab)"
    )
    index: int = Field(description="Its place among the session's declared labs, from 0; a repeat answers the first")


class ActiveSessionResponseDto(SessionStatusResponseDto):
    """Answer of `GET /active-session` (which sends no `declared_labs`: always empty here)."""

    session_id: str


class ClientInfoDto(BaseModel):
    """Who opened a session: the `client` object of `POST /session`'s body, shown by `GET /sessions`.

    Every field is optional text without control characters: `user` at most 64 characters,
    `host` 255, `ci_job_url` 2048 (an `http://` or `https://` link), `label` 512.
    """

    user: str | None = None
    host: str | None = None
    ci_job_url: str | None = None
    label: str | None = None


class QueuedSessionDto(BaseModel):
    """One session of `GET /sessions`, in line order."""

    id: str = Field(description="The session id's first 8 hex digits (never the full id)")
    status: SessionState
    position: int = Field(description="As `GET /session/{id}` reports it; 0 is ACTIVE")
    slot: int | None = Field(default=None, description="The lab slot it holds (from 1), when ACTIVE")
    client: ClientInfoDto | None = None
    owner: str | None = Field(default=None, description="The name of the token that created it (servers with auth on)")
    waiting_seconds: float = Field(description="Seconds in the line before its promotion (up to now while waiting)")
    holding_seconds: float | None = Field(default=None, description="Seconds since its promotion, when ACTIVE")
    heartbeat_seconds: int | None = Field(
        default=None, description="The heartbeat interval its client announced (its lease); None when none"
    )
    lease_seconds: float | None = Field(
        default=None, description="Seconds it may stay silent before it is evicted, by its lease; None without one"
    )
    silent_seconds: float | None = Field(default=None, description="Seconds since its last sign of life")
    declared_labs: list[str] = Field(
        default_factory=list,
        description="The labs it declared it will ask for, in order, by their identity's first 12 hex digits",
    )


class SlotDto(BaseModel):
    """One lab slot of `GET /sessions` (its `lab` summary is not modelled here)."""

    slot: int = Field(description="From 1")
    phase: str = Field(description="`idle`, `starting`, `up`, `releasing`, `tearing_down`, `dirty` or `failed`")
    holder: str | None = Field(default=None, description="The holder's 8-hex-digit id prefix")


class SessionsDto(BaseModel):
    """Answer of `GET /sessions`: the line and the slots, taken at one instant. Not a sign of life."""

    sessions: list[QueuedSessionDto]
    slots: list[SlotDto]
