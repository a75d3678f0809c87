"""Keyward forge-adapter conveniences for Python, as the Rust SDK has them.

`Adapter` answers `unsupported` for every optional operation of the world
`forge-adapter`, so a plugin's `Forge(Adapter)` implements `info`, `whoami`
and only what its forge supports. `status_error` and `host_error` turn a
forge's non-2xx status and a failed host call into the `forge-error` the
host expects; `user_account` reads a Forgejo-style user. `keyward plugin new --lang python --kind forge` writes this
file beside app.py, and `build` bundles both.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import forge
from wit_world.imports import types


class Adapter(exports.Forge):
    """The optional operations, each answering `unsupported`."""

    def unsupported(self, what: str) -> Err:
        """The error of an operation this adapter does not implement."""
        return Err(forge.ForgeError_Unsupported(f"{self.info().kind}: {what} is not supported"))

    def authorize_url(self, base_url, app, state, code_challenge, scopes) -> str:
        raise self.unsupported("authorize-url")

    def exchange_code(self, base_url, app, code, code_verifier) -> forge.TokenSet:
        raise self.unsupported("exchange-code")

    def refresh(self, base_url, app, refresh_token) -> forge.TokenSet:
        raise self.unsupported("refresh")

    def list_repositories(self, base_url, token, cursor) -> forge.RepositoryPage:
        raise self.unsupported("list-repositories")

    def revoke(self, base_url, app, token) -> None:
        raise self.unsupported("revoke")


def status_error(message: str, status: int, retry_after: str | None = None) -> Err:
    """The forge-error for a non-2xx `status`: 401 unauthorized, 403
    forbidden, 404 not-found, 429 rate-limited (waiting `retry_after`
    seconds, when the forge said), anything else upstream."""
    if status == 401:
        return Err(forge.ForgeError_Unauthorized(message))
    if status == 403:
        return Err(forge.ForgeError_Forbidden(message))
    if status == 404:
        return Err(forge.ForgeError_NotFound(message))
    if status == 429:
        seconds = None
        if retry_after is not None and retry_after.strip().isdigit():
            seconds = min(int(retry_after.strip()), 2**32 - 1)
        return Err(forge.ForgeError_RateLimited(forge.RateLimit(retry_after=seconds, message=message)))
    return Err(forge.ForgeError_Upstream(message))


def host_error(e: Err) -> Err:
    """A failed host call as a forge-error: a failed connection (`upstream`)
    is `transport`; any other refusal passes on unchanged as `host`."""
    if isinstance(e.value, types.Error_Upstream):
        return Err(forge.ForgeError_Transport(e.value.value))
    return Err(forge.ForgeError_Host(e.value))


def optional(value) -> str | None:
    """A JSON string field as option<string>: missing, null or "" is None."""
    if value is None:
        return None
    text = str(value)
    return text if text else None


def user_account(body: bytes) -> forge.Account:
    """A Forgejo-style `GET /api/v1/user` answer (`id`, `login`, `full_name`,
    `email`) as an account, without scopes or expiry. Raises ValueError,
    KeyError, TypeError or AttributeError when the answer is unreadable."""
    user = json.loads(body)
    return forge.Account(
        id=str(user["id"]),
        login=str(user["login"]),
        name=optional(user.get("full_name")),
        email=optional(user.get("email")),
        scopes=[],
        expires_at=None,
    )
