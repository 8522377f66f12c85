"""HTTP Basic authentication for the web UI (``--gradio-auth``) and the API (``--api-auth``), spec §8, §9.

One pure ASGI middleware in front of the whole app (FastAPI routes and the mounted Gradio app, HTTP
and websockets), so nothing Gradio adds at runtime can slip past it. Two realms:

- API: ``/sdapi`` and below, plus the API docs (``/docs``, ``/redoc``, ``/openapi.json``) when
  ``--api-auth`` is set. Checked against ``--api-auth``.
- UI: every other path. Checked against ``--gradio-auth`` and ``--gradio-auth-path``.

A realm with no credentials is open, as in A1111 (``--gradio-auth`` alone leaves ``/sdapi`` open;
:func:`exposure_warnings` says so when the server is reachable from the network).

Credentials are compared in constant time: every configured pair is checked, with SHA-256 digests
so that lengths leak nothing, and without stopping at the first match. A refused request gets 401
with ``WWW-Authenticate: Basic`` and a one-word body; a websocket is closed before it is accepted.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import posixpath
from argparse import Namespace
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence

ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]

API_PREFIX = "/sdapi"
API_DOC_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
UI_REALM = "Stable Diffusion web UI"
API_REALM = "Stable Diffusion web UI API"
# RFC 6455 close code for "policy violation": the websocket is refused before it is accepted.
_WS_POLICY_VIOLATION = 1008


def parse_credentials(text: str, source: str) -> list[tuple[str, str]]:
    """``"u1:p1,u2:p2"`` (also one entry per line) as ``[(user, password), ...]``.

    Each entry is split on its first ``:``, so a password may contain ``:``; blank entries are
    skipped. ``source`` names the flag or file in errors; an error never shows the entry itself,
    which may be a password.
    """
    creds: list[tuple[str, str]] = []
    lines = text.splitlines()
    for line_no, line in enumerate(lines, 1):
        for item_no, item in enumerate(line.split(","), 1):
            item = item.strip()
            if not item:
                continue
            if ":" not in item:
                where = f"line {line_no}, entry {item_no}" if len(lines) > 1 else f"entry {item_no}"
                raise ValueError(f"{source}: {where} is not of the form username:password")
            user, password = item.split(":", 1)
            creds.append((user, password))
    return creds


def gradio_credentials(args: Namespace) -> list[tuple[str, str]]:
    """``--gradio-auth`` plus the entries of the ``--gradio-auth-path`` file (same syntax, any number of lines)."""
    creds = parse_credentials(getattr(args, "gradio_auth", None) or "", "--gradio-auth")
    auth_path = getattr(args, "gradio_auth_path", None)
    if auth_path:
        try:
            text = Path(auth_path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"--gradio-auth-path {auth_path}: cannot read the file: {e}") from e
        file_creds = parse_credentials(text, f"--gradio-auth-path {auth_path}")
        if not file_creds:
            raise ValueError(f"--gradio-auth-path {auth_path}: the file holds no username:password entry")
        creds += file_creds
    return creds


def api_credentials(args: Namespace) -> list[tuple[str, str]]:
    return parse_credentials(getattr(args, "api_auth", None) or "", "--api-auth")


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8")).digest()


class CredentialSet:
    """A fixed list of (user, password) pairs, checked without timing leaks."""

    def __init__(self, pairs: Sequence[tuple[str, str]]):
        self._pairs = tuple((_digest(u), _digest(p)) for u, p in pairs)

    def __bool__(self) -> bool:
        return bool(self._pairs)

    def check(self, user: str, password: str) -> bool:
        u, p = _digest(user), _digest(password)
        ok = False
        for cu, cp in self._pairs:
            # Non-short-circuit operators: every pair costs the same whether or not the user matches.
            ok |= hmac.compare_digest(u, cu) & hmac.compare_digest(p, cp)
        return ok


@dataclass(frozen=True)
class AuthConfig:
    ui: CredentialSet
    api: CredentialSet

    @classmethod
    def from_args(cls, args: Namespace) -> "AuthConfig":
        """Raises ValueError naming the flag or file when an entry is malformed."""
        return cls(ui=CredentialSet(gradio_credentials(args)), api=CredentialSet(api_credentials(args)))

    def realm_for(self, path: str) -> tuple[str, CredentialSet]:
        """Which credentials guard ``path`` (an empty set: open)."""
        # Normalized like a router might see it: repeated slashes and dot segments do not move a
        # request out of the API realm.
        norm = posixpath.normpath("/" + path.lstrip("/")) if path else "/"
        if norm == API_PREFIX or norm.startswith(API_PREFIX + "/"):
            return API_REALM, self.api
        if self.api and (norm in API_DOC_PATHS or norm.startswith("/docs/")):
            return API_REALM, self.api
        return UI_REALM, self.ui


def basic_credentials(headers: Sequence[tuple[bytes, bytes]]) -> tuple[str, str] | None:
    """(user, password) from an ``Authorization: Basic`` header; None when absent or malformed."""
    for name, value in headers:
        if name.lower() != b"authorization":
            continue
        scheme, _, token = value.decode("latin-1").strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        if ":" not in decoded:
            return None
        user, password = decoded.split(":", 1)
        return user, password
    return None


class BasicAuthMiddleware:
    """ASGI middleware: each request must carry credentials of its path's realm (see :class:`AuthConfig`)."""

    def __init__(self, app: ASGIApp, config: AuthConfig):
        self.app = app
        self.config = config

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        realm, creds = self.config.realm_for(scope.get("path", "/"))
        if creds:
            given = basic_credentials(scope.get("headers") or [])
            if given is None or not creds.check(*given):
                await _refuse(scope, send, realm)
                return
        await self.app(scope, receive, send)


async def _refuse(scope: dict, send: Any, realm: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": _WS_POLICY_VIOLATION})
        return
    body = b"Unauthorized"
    await send({"type": "http.response.start", "status": 401, "headers": [
        (b"www-authenticate", f'Basic realm="{realm}", charset="UTF-8"'.encode()),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]})
    await send({"type": "http.response.body", "body": body})


def exposure_warnings(args: Namespace, auth: AuthConfig) -> list[str]:
    """What is open to the network: the UI or API served beyond this machine without a password."""
    if not getattr(args, "webui_is_non_local", False):
        return []
    warnings = []
    ui_on = not getattr(args, "nowebui", False)
    api_on = bool(getattr(args, "api", False) or getattr(args, "nowebui", False))
    if ui_on and not auth.ui:
        warnings.append("the web UI is reachable from the network without a password: anyone who can reach this "
                        "machine can use it (set --gradio-auth user:password or --gradio-auth-path FILE)")
    if api_on and not auth.api:
        warnings.append("the API (/sdapi) is reachable from the network without a password"
                        + (" (--gradio-auth does not protect it)" if auth.ui else "")
                        + ": set --api-auth user:password")
    return warnings
