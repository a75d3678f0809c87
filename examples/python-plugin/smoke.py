"""Runs the built example-signed.wasm under wasmtime-py with fake host imports.

A check of the plugin alone, without Keyward: the fake `secrets`, `outbound`
and `log` record what the plugin asked for, and `outbound.fetch` answers as
the signed forge would (200 only for a correct signature and token header).

    python3 -m venv /tmp/smoke && /tmp/smoke/bin/pip install wasmtime==50.0.1
    examples/python-plugin/build
    /tmp/smoke/bin/python examples/python-plugin/smoke.py [path/to/example-signed.wasm]

Compiling the component takes 10-30 s; the calls take milliseconds.
"""

import hashlib
import hmac
import json
import os
import sys
import time

from wasmtime import Config, Engine, Store, WasiConfig
from wasmtime.component import Component, Linker, Record, Variant

HERE = os.path.dirname(os.path.abspath(__file__))
WASM = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    HERE, "..", "..", "target", "python-plugin", "example-signed.wasm"
)
KEY_REF = "plugin:example-signed/signing-key"
KEY = b"test-signing-key"
TOKEN_REF = "forge/token"
MEMORY = 64 << 20  # the manifest's memory_mib

engine = Engine(Config())
started = time.monotonic()
component = Component.from_file(engine, WASM)
print(f"compiled {os.path.getsize(WASM)} bytes in {time.monotonic() - started:.1f} s")


def instance(scenario):
    """A fresh instance whose fake host behaves as `scenario` says."""
    calls = []
    linker = Linker(engine)
    linker.add_wasip2()
    with linker.root() as root:
        with root.add_instance("keyward:plugin/types@0.1.0"):
            pass
        with root.add_instance("keyward:plugin/secrets@0.1.0") as secrets:
            def exists(_store, reference):
                calls.append(("exists", reference))
                return True

            def reveal(_store, reference, reason):
                calls.append(("reveal", reference, reason))
                if scenario == "denied" or reference != KEY_REF:
                    return Variant("denied", f"{reference} is not granted")
                return KEY

            secrets.add_func("exists", exists)
            secrets.add_func("reveal", reveal)
        with root.add_instance("keyward:plugin/outbound@0.1.0") as outbound:
            def fetch(_store, req):
                calls.append(("fetch", req.method, req.url, list(req.headers), req.body))
                if scenario == "refused":
                    return Variant("upstream", "connection refused")
                headers = dict(req.headers)
                signed = headers.get("X-Signature") == hmac.new(
                    KEY, b"GET /api/v1/user", hashlib.sha256
                ).hexdigest()
                authorized = headers.get("Authorization") == "token ${SECRET:" + TOKEN_REF + "}"
                resp = Record()
                resp.headers = [("content-type", "application/json")]
                resp.status = 200 if signed and authorized else 401
                if scenario == "limited":
                    resp.status = 429
                    resp.headers = [("retry-after", "30")]
                resp.body = json.dumps(
                    {"id": 42, "login": "alice", "full_name": "", "email": "alice@example.org"}
                ).encode()
                if scenario == "status":
                    resp.status = 503
                elif scenario == "junk":
                    resp.body = b"<html>"
                return resp

            outbound.add_func("fetch", fetch)
        with root.add_instance("keyward:plugin/log@0.1.0") as log:
            def emit(_store, level, message):
                calls.append(("log", level, message))

            log.add_func("emit", emit)
    store = Store(engine)
    store.set_wasi(WasiConfig())  # like the host: no env, no preopens, no network
    store.set_limits(memory_size=MEMORY)
    inst = linker.instantiate(store, component)
    forge = inst.get_export_index(store, "keyward:plugin/forge@0.1.0")

    def call(name, *args):
        return inst.get_func(store, inst.get_export_index(store, name, forge))(store, *args)

    return call, calls


passed = failed = 0


def check(what, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok    {what}")
    else:
        failed += 1
        print(f"FAIL  {what}: {detail}")


call, calls = instance("ok")
info = call("info")
check(
    "info",
    (info.kind, info.__dict__["display-name"], info.__dict__["default-base-url"])
    == ("example-signed", "Example (Python)", "http://127.0.0.1:3000"),
    vars(info),
)
check("info calls no host function", calls == [], calls)

call, calls = instance("ok")
account = call("whoami", "http://127.0.0.1:3000/", TOKEN_REF)
check(
    "whoami returns the account",
    isinstance(account, Record)
    and vars(account)
    == {
        "id": "42",
        "login": "alice",
        "name": None,
        "email": "alice@example.org",
        "scopes": [],
        "expires-at": None,
    },
    account,
)
check(
    "whoami reveals the key with a reason",
    ("reveal", KEY_REF, "sign the whoami request") in calls,
    calls,
)
fetches = [c for c in calls if c[0] == "fetch"]
check(
    "whoami fetches GET <base>/api/v1/user once",
    [(c[1], c[2], c[4]) for c in fetches] == [("GET", "http://127.0.0.1:3000/api/v1/user", None)],
    fetches,
)
check("whoami logs one line", len([c for c in calls if c[0] == "log"]) == 1, calls)

for scenario, base, want in [
    ("status", "https://forge.example", Variant("upstream", "example-signed: GET /api/v1/user → 503")),
    ("denied", "https://forge.example", Variant("host", Variant("denied", f"{KEY_REF} is not granted"))),
    ("refused", "https://forge.example", Variant("transport", "connection refused")),
]:
    call, calls = instance(scenario)
    got = call("whoami", base, TOKEN_REF)
    check(f"whoami [{scenario}] -> {want.tag}", got == want, got)

call, calls = instance("ok")
got = call("whoami", "https://forge.example", "other/token")
check(
    "whoami [401] -> unauthorized",
    isinstance(got, Variant) and got.tag == "unauthorized" and "401" in got.payload,
    got,
)

call, calls = instance("limited")
got = call("whoami", "https://forge.example", TOKEN_REF)
check(
    "whoami [429] -> rate-limited with retry-after",
    isinstance(got, Variant)
    and got.tag == "rate-limited"
    and vars(got.payload)["retry-after"] == 30,
    got,
)

call, calls = instance("ok")
app = Record()
setattr(app, "client-id", "id")
setattr(app, "client-secret", None)
setattr(app, "redirect-uri", "https://keyward.example/cb")
for name, args in [
    ("authorize-url", ("https://forge.example", app, "state", "challenge", [])),
    ("exchange-code", ("https://forge.example", app, "code", "verifier")),
    ("refresh", ("https://forge.example", app, "forge/refresh")),
    ("list-repositories", ("https://forge.example", TOKEN_REF, None)),
    ("revoke", ("https://forge.example", app, TOKEN_REF)),
]:
    got = call(name, *args)
    check(
        f"{name} -> unsupported",
        isinstance(got, Variant) and got.tag == "unsupported" and name in got.payload,
        got,
    )
check("the unsupported exports call no host function", calls == [], calls)

call, calls = instance("junk")
got = call("whoami", "https://forge.example", TOKEN_REF)
check(
    "whoami [junk body] -> upstream",
    isinstance(got, Variant) and got.tag == "upstream" and "unexpected response" in got.payload,
    got,
)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
