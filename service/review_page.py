"""The reviewer page (``/review``) and its sign-in (``/v1/session``)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from streetwatch.service.auth import allows, lookup
from streetwatch.service.session import COOKIE, LIFETIME_S, issue
from streetwatch.service.state import State

review_page = APIRouter()
PAGE = Path(__file__).resolve().with_name("static") / "review.html"


class SignIn(BaseModel):
    key: str


@review_page.get("/review", response_class=HTMLResponse)
def page() -> HTMLResponse:
    """The reviewer page: one file, no assets from the internet."""
    return HTMLResponse(PAGE.read_text(encoding="utf-8"))


@review_page.post("/v1/session")
def sign_in(body: SignIn, state: State, response: Response) -> dict[str, str]:
    """Exchange a reviewer's key for a session cookie (HttpOnly, SameSite=Strict)."""
    with state.sessions() as session:
        record = lookup(session, body.key.strip())
    if record is None or not allows(record.role, "reviewer"):
        raise HTTPException(401, "not a reviewer key")
    response.set_cookie(COOKIE, issue(state.session_secret, record.id), max_age=LIFETIME_S,
                        httponly=True, samesite="strict")
    return {"name": record.name, "role": record.role}


@review_page.delete("/v1/session")
def sign_out(response: Response) -> dict[str, str]:
    response.delete_cookie(COOKIE)
    return {"status": "signed out"}
