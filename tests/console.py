"""Signing people in to the console over HTTP, and reading its pages: links, forms and their fields."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from html.parser import HTMLParser
from typing import Any

import httpx

from tests.servers import RunningServer
from tracklane.domain.model import Role
from tracklane.resources.users import UserCreate

PASSWORD = "correct horse battery"
_serial = itertools.count(1)


def person(server: RunningServer, role: Role, owner_id: int | None = None, name: str = "") -> str:
    """A user of `role` (of advertiser or partner `owner_id`) with the password `PASSWORD`; its email."""
    email = f"{role.value}{next(_serial)}@people.example"
    owner = {"advertiser_id": owner_id} if role is Role.ADVERTISER else {"partner_id": owner_id} if owner_id else {}
    request = UserCreate(
        email=email, name=name or f"{role.value.title()} person", role=role, password=PASSWORD, **owner
    )
    with ThreadPoolExecutor(1) as thread:  # a thread of its own: Playwright's sync API runs an event loop here
        thread.submit(asyncio.run, server.container.users.create(request)).result()
    return email


class Page(HTMLParser):
    """The links and POST forms of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.forms: list[dict[str, Any]] = []
        self._form: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "a" and "href" in values:
            self.links.append(values["href"])
        elif tag == "form":
            self._form = {
                "action": values.get("action", ""),
                "method": values.get("method", "get").lower(),
                "fields": {},
            }
            self.forms.append(self._form)
        elif tag in ("input", "select", "textarea", "button") and self._form is not None and values.get("name"):
            if values.get("type") in ("checkbox", "radio") and "checked" not in values:
                return
            self._form["fields"].setdefault(values["name"], values.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None


def parsed(html: str) -> Page:
    found = Page()
    found.feed(html)
    return found


@contextmanager
def signed_in(server: RunningServer, email: str, password: str = PASSWORD) -> Iterator[httpx.Client]:
    """A client with a session of `email` (it signed in through the sign-in form)."""
    with httpx.Client(base_url=server.base_url, follow_redirects=True, timeout=30) as client:
        form = next(f for f in parsed(client.get("/ui/sign-in").text).forms if f["action"] == "/ui/sign-in")
        answer = client.post("/ui/sign-in", data={**form["fields"], "email": email, "password": password})
        assert answer.status_code == 200, answer.text
        assert "tl_session" in client.cookies, "the sign-in did not start a session"
        yield client


def csrf_of(html: str) -> str:
    """The CSRF token of the page's forms."""
    return next(f["fields"]["csrf_token"] for f in parsed(html).forms if "csrf_token" in f["fields"])
