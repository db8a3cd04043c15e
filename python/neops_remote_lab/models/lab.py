"""Wire types of the `/lab` routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class DeviceInfoDto(BaseModel):
    """One node of the running lab."""

    model_config = ConfigDict(from_attributes=True)

    name: str = Field(description="Node name in the topology")
    raw: dict[str, Any] = Field(
        description="Netlab's host view of the node: mgmt.ipv4, ansible_host, ansible_network_os, ansible_user, ..."
    )


class LabStatusDto(BaseModel):
    """Answer of `GET /lab`."""

    running: bool = Field(description="Whether a lab is up")
    topology: str | None = Field(
        default=None,
        description="File name of the running lab's topology, not a path on the server; None when none runs",
    )
    ref_count: int = Field(default=0, description="How many acquisitions currently hold the lab")
    devices: list[DeviceInfoDto] = Field(default_factory=list)
    netlab_status: str | None = Field(default=None, description="What `netlab status` reported, when known")


class AcquireResponseDto(BaseModel):
    """Answer of `POST /lab`."""

    reused: bool = Field(description="True when the request attached to a lab that was already running")
    devices: list[DeviceInfoDto]
