"""Keyward example forge adapter, written in Python (componentize-py).

A fictional "signed forge" wants every API request signed: the header
`X-Signature` carries HMAC-SHA256(signing key, "<METHOD> <PATH>") in hex. The
signing key is the one secret this plugin has to see, so it is granted in
plugin.toml and read with `secrets.reveal` (the host logs the read, with the
reason given here). The user's token, by contrast, is never seen: the adapter
sends the reference `${SECRET:<token>}` and the host expands it at egress.

Mapping of the WIT world `forge-adapter` to Python (componentize-py 0.25.1):
- the exported interface `forge` is implemented by a class named `Forge` in
  this module, subclassing `wit_world.exports.Forge`;
- imported functions returning `result<T, error>` return T or raise
  `componentize_py_types.Err(error)`; an export does the same, so an `Err`
  raised by the host passes through unchanged when not caught;
- the variant `error` is a union of dataclasses `types.Error_Denied`, ...,
  `types.Error_Upstream`, each with a `value: str`; the exports fail with
  the variant `forge-error` instead (`forge.ForgeError_Unauthorized`, ...,
  `forge.ForgeError_Host(types.Error_...)`), so a host error is wrapped in
  `ForgeError_Host` on its way out.
- `keyward_forge` (the Python scaffold's helper module, which `build`
  bundles from host/src/cli/plugin/templates/python/) answers `unsupported`
  for the operations this example leaves out and maps statuses and host
  errors to `forge-error`.
"""

import hashlib
import hmac
import json

from componentize_py_types import Err
from wit_world.exports import forge
from wit_world.imports import log, outbound, secrets

from keyward_forge import Adapter, host_error, status_error, user_account

KIND = "example-signed"
SIGNING_KEY = "plugin:example-signed/signing-key"
WHOAMI_METHOD = "GET"
WHOAMI_PATH = "/api/v1/user"


def sign(key: bytes, method: str, path: str) -> str:
    """Hex HMAC-SHA256 of "<METHOD> <PATH>" under `key`."""
    return hmac.new(key, f"{method} {path}".encode(), hashlib.sha256).hexdigest()


# componentize-py runs this module at build time and snapshots the
# interpreter; at run time there is no file system, so a standard-library
# module that is first imported lazily inside a call cannot be found
# (`hmac.new` imports `warnings` on first use, for one). Exercising the code
# paths here pulls everything they need into the snapshot.
sign(b"warm-up", WHOAMI_METHOD, WHOAMI_PATH)
json.loads(b'{"id": 1, "login": "warm-up", "full_name": null, "email": ""}')


class Forge(Adapter):
    def info(self) -> forge.ForgeInfo:
        # Must not call the host.
        return forge.ForgeInfo(
            kind=KIND,
            display_name="Example (Python)",
            default_base_url="http://127.0.0.1:3000",
        )

    def whoami(self, base_url: str, token: str) -> forge.Account:
        # Host errors (`denied`, `not-found`, ...) are raised as Err(error)
        # by the bindings; they reach the host as `forge-error.host(error)`,
        # unchanged, except that a failed connection is `transport`.
        try:
            key = secrets.reveal(SIGNING_KEY, "sign the whoami request")
        except Err as e:
            raise Err(forge.ForgeError_Host(e.value))
        signature = sign(key, WHOAMI_METHOD, WHOAMI_PATH)
        del key

        url = base_url.rstrip("/") + WHOAMI_PATH
        log.emit(log.Level.INFO, f"{KIND}: {WHOAMI_METHOD} {url} (signed)")
        try:
            response = outbound.fetch(
                outbound.Request(
                    method=WHOAMI_METHOD,
                    url=url,
                    headers=[
                        ("Accept", "application/json"),
                        ("Authorization", "token ${SECRET:" + token + "}"),
                        ("X-Signature", signature),
                    ],
                    body=None,
                )
            )
        except Err as e:
            raise host_error(e)
        if not 200 <= response.status < 300:
            retry_after = next((v for n, v in response.headers if n == "retry-after"), None)
            message = f"{KIND}: {WHOAMI_METHOD} {WHOAMI_PATH} → {response.status}"
            raise status_error(message, response.status, retry_after)

        try:
            # The signed forge does not report scopes or expiry.
            account = user_account(response.body)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise Err(
                forge.ForgeError_Upstream(
                    f"{KIND}: {WHOAMI_METHOD} {WHOAMI_PATH}: unexpected response ({type(e).__name__})"
                )
            )
        return account
