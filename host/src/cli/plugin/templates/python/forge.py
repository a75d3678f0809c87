"""{{name}}: a Keyward forge adapter (world `forge-adapter`) in Python.

The host calls `whoami` with the forge's base URL and a *reference* to the
token: the adapter writes `${SECRET:<reference>}` into its request and the
host expands it on the way out, so the token never enters the plugin. This
skeleton speaks Forgejo's `GET /api/v1/user`; change the path and fields for
your forge.

componentize-py maps the exported interface `forge` to the class `Forge`
below; a function returning `result<T, E>` returns T or raises `Err(E)`.
componentize-py runs this module at build time and snapshots it; there is
no file system at run time, so import every module at the top.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import forge
from wit_world.imports import log, outbound, types

KIND = "{{name}}"
USER_PATH = "/api/v1/user"


def unsupported(what: str) -> Err:
    return Err(forge.ForgeError_Unsupported(f"{KIND}: {what} is not supported"))


def status_error(status: int) -> Err:
    message = f"{KIND}: GET {USER_PATH} answered {status}"
    if status == 401:
        return Err(forge.ForgeError_Unauthorized(message))
    if status == 403:
        return Err(forge.ForgeError_Forbidden(message))
    if status == 404:
        return Err(forge.ForgeError_NotFound(message))
    if status == 429:
        return Err(forge.ForgeError_RateLimited(forge.RateLimit(retry_after=None, message=message)))
    return Err(forge.ForgeError_Upstream(message))


def optional(value) -> str | None:
    """A JSON string field as option<string>: missing, null or "" is None."""
    return str(value) if value else None


json.loads('{"id": 1, "login": "warm-up"}')  # into the snapshot


class Forge(exports.Forge):
    def info(self) -> forge.ForgeInfo:
        # Must not call the host.
        return forge.ForgeInfo(kind=KIND, display_name=KIND, default_base_url="https://forge.example")

    def authorize_url(self, base_url, app, state, code_challenge, scopes) -> str:
        raise unsupported("authorize-url")

    def exchange_code(self, base_url, app, code, code_verifier) -> forge.TokenSet:
        raise unsupported("exchange-code")

    def refresh(self, base_url, app, refresh_token) -> forge.TokenSet:
        raise unsupported("refresh")

    def list_repositories(self, base_url, token, cursor) -> forge.RepositoryPage:
        raise unsupported("list-repositories")

    def revoke(self, base_url, app, token) -> None:
        raise unsupported("revoke")

    def whoami(self, base_url: str, token: str) -> forge.Account:
        request = outbound.Request(
            method="GET",
            url=base_url.rstrip("/") + USER_PATH,
            headers=[
                ("accept", "application/json"),
                ("authorization", "token ${SECRET:" + token + "}"),
            ],
            body=None,
        )
        try:
            response = outbound.fetch(request)
        except Err as e:
            # A failed connection is `transport`; other host refusals pass on.
            if isinstance(e.value, types.Error_Upstream):
                raise Err(forge.ForgeError_Transport(e.value.value))
            raise Err(forge.ForgeError_Host(e.value))
        if not 200 <= response.status < 300:
            raise status_error(response.status)
        try:
            user = json.loads(response.body)
            account = forge.Account(
                id=str(user["id"]),
                login=str(user["login"]),
                name=optional(user.get("full_name")),
                email=optional(user.get("email")),
                scopes=[],
                expires_at=None,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise Err(forge.ForgeError_Upstream(f"{KIND}: unreadable answer ({type(e).__name__})"))
        log.emit(log.Level.INFO, f"{KIND}: whoami: {account.login}")
        return account
