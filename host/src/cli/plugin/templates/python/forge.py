"""{{name}}: a Keyward forge adapter (world `forge-adapter`) in Python.

The host calls `whoami` with the forge's base URL and a *reference* to the
token: the adapter writes `${SECRET:<reference>}` into its request and the
host expands it on the way out, so the token never enters the plugin. This
skeleton speaks Forgejo's `GET /api/v1/user`; change the path and fields for
your forge.

componentize-py maps the exported interface `forge` to the class `Forge`
below; a function returning `result<T, E>` returns T or raises `Err(E)`.
`keyward_forge.Adapter` answers `unsupported` for the operations this
skeleton leaves out (authorize-url, exchange-code, refresh,
list-repositories, revoke): override them when your forge needs them.
componentize-py runs this module at build time and snapshots it; there is
no file system at run time, so import every module at the top.
"""

import json

from componentize_py_types import Err
from wit_world.exports import forge
from wit_world.imports import log, outbound

from keyward_forge import Adapter, host_error, status_error, user_account

KIND = "{{name}}"
USER_PATH = "/api/v1/user"


json.loads('{"id": 1, "login": "warm-up"}')  # into the snapshot


class Forge(Adapter):
    def info(self) -> forge.ForgeInfo:
        # Must not call the host.
        return forge.ForgeInfo(kind=KIND, display_name=KIND, default_base_url="https://forge.example")

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
            raise host_error(e)
        if not 200 <= response.status < 300:
            raise status_error(f"{KIND}: GET {USER_PATH} answered {response.status}", response.status)
        try:
            account = user_account(response.body)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise Err(forge.ForgeError_Upstream(f"{KIND}: unreadable answer ({type(e).__name__})"))
        log.emit(log.Level.INFO, f"{KIND}: whoami: {account.login}")
        return account
