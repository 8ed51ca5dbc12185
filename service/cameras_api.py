"""``/v1/cameras``: fixed cameras with their zones and rules, and their stream workers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select

from streetwatch.inference.camera import Camera
from streetwatch.models.files import validation_message
from streetwatch.service.auth import Caller, require
from streetwatch.service.db import CameraRow
from streetwatch.service.state import State
from streetwatch.service.streams import StreamWorkers

cameras = APIRouter()


class CameraIn(BaseModel):
    """A camera as the API takes it: ``config`` is what a camera YAML holds."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=500,
                            description="rtsp:// or http(s):// stream")
    fps: float = Field(default=1.0, gt=0, le=30)
    config: dict[str, Any] = Field(default_factory=dict)


class CameraCreate(CameraIn):
    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")


def get_streams(request: Request) -> StreamWorkers:
    streams: StreamWorkers = request.app.state.streams
    return streams


Streams = Annotated[StreamWorkers, Depends(get_streams)]
Admin = Annotated[Caller, Depends(require("admin"))]
Viewer = Annotated[Caller, Depends(require("reviewer"))]


def _checked(camera_id: str, body: CameraIn) -> dict[str, Any]:
    try:
        return Camera.model_validate({**body.config, "id": camera_id}).model_dump(mode="json")
    except ValidationError as exc:
        raise HTTPException(422, "config: " + validation_message(exc, "key")) from None


def _json(row: CameraRow, streams: StreamWorkers) -> dict[str, Any]:
    return {"id": row.id, "url": row.url, "fps": row.fps, "config": row.config,
            "running": row.running, **streams.status(row.id)}


@cameras.post("/v1/cameras", status_code=201)
def create_camera(body: CameraCreate, state: State, streams: Streams,
                  _caller: Admin) -> dict[str, Any]:
    """Add a camera; its zones and rules are checked like a camera YAML file."""
    camera_id = body.id
    config = _checked(camera_id, body)
    with state.sessions() as session:
        if session.get(CameraRow, camera_id) is not None:
            raise HTTPException(409, f"camera {camera_id} exists; PUT to change it")
        row = CameraRow(id=camera_id, url=body.url, fps=body.fps, config=config)
        session.add(row)
        session.commit()
        return _json(row, streams)


@cameras.get("/v1/cameras")
def list_cameras(state: State, streams: Streams, _caller: Viewer) -> list[dict[str, Any]]:
    with state.sessions() as session:
        return [_json(r, streams) for r in session.scalars(select(CameraRow)
                                                           .order_by(CameraRow.id))]


@cameras.get("/v1/cameras/{camera_id}")
def get_camera(camera_id: str, state: State, streams: Streams,
               _caller: Viewer) -> dict[str, Any]:
    with state.sessions() as session:
        return _json(_row(session, camera_id), streams)


@cameras.put("/v1/cameras/{camera_id}")
def update_camera(camera_id: str, body: CameraIn, state: State, streams: Streams,
                  _caller: Admin) -> dict[str, Any]:
    """Replace a camera's stream, rate, zones and rules; a running worker restarts."""
    config = _checked(camera_id, body)
    with state.sessions() as session:
        row = _row(session, camera_id)
        row.url, row.fps, row.config = body.url, body.fps, config
        session.commit()
        if row.running:
            _start(row, streams)
        return _json(row, streams)


@cameras.delete("/v1/cameras/{camera_id}", status_code=204)
def delete_camera(camera_id: str, state: State, streams: Streams, _caller: Admin) -> Response:
    streams.stop(camera_id)
    with state.sessions() as session:
        session.delete(_row(session, camera_id))
        session.commit()
    return Response(status_code=204)


@cameras.post("/v1/cameras/{camera_id}/start")
def start_camera(camera_id: str, state: State, streams: Streams,
                 _caller: Admin) -> dict[str, Any]:
    """Start the camera's stream worker (it starts again after a restart of the service)."""
    with state.sessions() as session:
        row = _row(session, camera_id)
        if not row.url:
            raise HTTPException(422, f"camera {camera_id} has no stream url")
        row.running = True
        session.commit()
        _start(row, streams)
        return _json(row, streams)


@cameras.post("/v1/cameras/{camera_id}/stop")
def stop_camera(camera_id: str, state: State, streams: Streams,
                _caller: Admin) -> dict[str, Any]:
    with state.sessions() as session:
        row = _row(session, camera_id)
        row.running = False
        session.commit()
        streams.stop(camera_id)
        return _json(row, streams)


def _row(session: Any, camera_id: str) -> CameraRow:
    row: CameraRow | None = session.get(CameraRow, camera_id)
    if row is None:
        raise HTTPException(404, f"no camera {camera_id}")
    return row


def _start(row: CameraRow, streams: StreamWorkers) -> None:
    assert row.url is not None
    streams.start(row.id, row.url, row.fps, row.config)


def resume(state: State, streams: StreamWorkers) -> None:
    """Start the workers of cameras left running (at service start)."""
    with state.sessions() as session:
        for row in session.scalars(select(CameraRow).where(CameraRow.running)):
            if row.url:
                _start(row, streams)
