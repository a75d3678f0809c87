"""Keyward migrator `git-credentials`, written in Python (componentize-py).

Imports a git credential-store file (what `git config credential.helper
store` writes, `~/.git-credentials`): one URL per line,

    https://USER:TOKEN@HOST[:PORT][/path]

with USER and TOKEN percent-encoded as git writes them. Each line becomes
the secret `git_host:<HOST>/TOKEN` (`<HOST>_<PORT>` when the line has a
port), holding the percent-decoded token. All lines of the file are one
retire unit: once every one is written, the file is renamed to
`.<file>.migrated.bak` beside it (a name that already starts with a dot
keeps its one dot: `.git-credentials.migrated.bak`).

The host drives the run (discover, read in batches, write, then retire)
and every call is a fresh instance, so each call re-reads the file from the
run's source folder, preopened at `/source`. Option `file` names the file
inside the source (default `.git-credentials`).

Mapping of the WIT world `migrator` to Python (componentize-py 0.25.1):
the exported interface `migration` is a class named `Migration` in this
module; `discover`/`plan-renames` return their value or raise
`Err(types.Error_...)`; `read`/`retire` return a list of `Ok(...)` /
`Err("reason")`, one per id or unit.

A reason (a problem, a failed read or retire) never holds a token: it
names the file, the line number and at most the host.
"""

import os
import urllib.parse

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.exports import migration
from wit_world.imports import types

NAME = "git-credentials"
DEFAULT_FILE = ".git-credentials"
SCOPE_KIND = "git_host"
TOKEN_NAME = "TOKEN"
# A credential file is a few hundred bytes; this bounds a hostile one.
MAX_FILE_BYTES = 1 << 20
# The host's limit for one secret value.
MAX_VALUE = 64 * 1024
# Scope ids: [A-Za-z0-9][A-Za-z0-9_.-]*, at most 128 bytes.
MAX_SCOPE_ID = 128
ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")


def valid_scope_id(text: str) -> bool:
    return (
        0 < len(text) <= MAX_SCOPE_ID
        and text[0].isascii()
        and text[0].isalnum()
        and all(c in ID_CHARS for c in text)
    )


class Entry:
    """One good line: its number, who, for which host, and the token."""

    def __init__(self, line: int, user: str, host: str, key: str, token: bytes):
        self.line = line
        self.user = user
        self.host = host  # as shown: `host` or `host:port`, lowercased
        self.key = key  # the scope id: `host` or `host_port`
        self.token = token


def parse_line(line: int, text: str):
    """An Entry for one non-empty line, or the reason it is not one.

    The reason never quotes the line: the scheme or user part of a broken
    line may well be the token."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        return "no scheme (expected https://USER:TOKEN@HOST)"
    if scheme.lower() not in ("http", "https"):
        return "the scheme is not http or https"
    end = len(rest)
    for stop in "/?#":
        at = rest.find(stop)
        if at != -1:
            end = min(end, at)
    authority = rest[:end]
    userinfo, at, hostport = authority.rpartition("@")
    if not at:
        return "no USER:TOKEN@ before the host"
    user_enc, colon, token_enc = userinfo.partition(":")
    if not colon or not token_enc:
        return "no token (expected USER:TOKEN@HOST)"
    if not user_enc:
        return "no user (expected USER:TOKEN@HOST)"
    if hostport.startswith("["):
        return "an IPv6 host cannot be a scope id"
    host, colon, port = hostport.partition(":")
    host = host.lower()
    if not host or not all(c in HOST_CHARS for c in host):
        return "no valid host name"
    if colon and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        return f"host {host}: the port is not a number from 1 to 65535"
    shown = f"{host}:{port}" if colon else host
    key = f"{host}_{port}" if colon else host
    if not valid_scope_id(key):
        return f"host {shown}: does not fit a scope id ([A-Za-z0-9][A-Za-z0-9_.-]*, at most {MAX_SCOPE_ID})"
    token = urllib.parse.unquote_to_bytes(token_enc)
    if len(token) > MAX_VALUE:
        return f"host {shown}: the token is larger than {MAX_VALUE} bytes"
    user = urllib.parse.unquote(user_enc, errors="replace")
    # For the description: no control characters on the operator's screen.
    user = "".join(c if c.isprintable() else "?" for c in user)
    return Entry(line, user, shown, key, token)


class Scan:
    """What one file holds: good entries by scope id, and problems."""

    def __init__(self, file: str, data: bytes):
        self.file = file
        self.entries = {}  # key -> Entry, in file order
        self.problems = []  # migration.Problem
        conflicts = {}  # key -> [line numbers]
        for number, raw in enumerate(data.split(b"\n"), start=1):
            raw = raw.strip()
            if not raw:
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                self.problem(number, "not UTF-8 text")
                continue
            entry = parse_line(number, text)
            if isinstance(entry, str):
                self.problem(number, entry)
                continue
            first = self.entries.get(entry.key)
            if first is None:
                self.entries[entry.key] = entry
            elif (first.user, first.token) != (entry.user, entry.token):
                conflicts.setdefault(entry.key, [first.line]).append(entry.line)
            # The same credential twice is one item.
        for key, lines in conflicts.items():
            host = self.entries.pop(key).host
            listed = ", ".join(str(n) for n in lines)
            self.problems.append(
                migration.Problem(
                    id=self.item_id(key),
                    reason=f"lines {listed} hold different credentials for {host}; "
                    "keep one line per host and run again",
                )
            )

    def problem(self, number: int, reason: str):
        self.problems.append(
            migration.Problem(id=f"{self.file}:{number}", reason=f"line {number}: {reason}")
        )

    def item_id(self, key: str) -> str:
        return f"{self.file}#{key}"

    def items(self):
        return [
            migration.Item(
                id=self.item_id(e.key),
                target=f"{SCOPE_KIND}:{e.key}/{TOKEN_NAME}",
                description=f"git credential of {e.user} for {e.host}",
                binding=migration.Binding_None_(),
                unit=self.file,
            )
            for e in self.entries.values()
        ]


def source_dir(run: migration.RunConfig) -> str:
    if run.source is None or not run.source.startswith("/"):
        raise Err(types.Error_Invalid(f"{NAME} needs --source FOLDER (the folder holding the file)"))
    return run.source


def relative_file(text: str) -> str | None:
    """A file path inside the source, normalised, or None if it leaves it."""
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if text.startswith("/") or not parts or ".." in parts:
        return None
    return "/".join(parts)


def option_file(run: migration.RunConfig) -> str:
    value = DEFAULT_FILE
    for key, v in run.options:
        if key == "file":
            value = v
        else:
            raise Err(types.Error_Invalid(f"{NAME}: unknown option {key!r} (known: file)"))
    file = relative_file(value)
    if file is None:
        raise Err(types.Error_Invalid(f"{NAME}: option file must be a path inside the source"))
    return file


def retired_name(path: str) -> str:
    """`dir/.name.migrated.bak` for `dir/name`; a dotfile keeps one dot."""
    folder, _, name = path.rpartition("/")
    bak = (name if name.startswith(".") else "." + name) + ".migrated.bak"
    return f"{folder}/{bak}" if folder else bak


def read_bytes(path: str, shown: str) -> bytes:
    """The file's bytes, or raise OSError / ValueError with a reason."""
    with open(path, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{shown}: larger than {MAX_FILE_BYTES} bytes")
    return data


def why(e: OSError) -> str:
    return e.strerror or type(e).__name__


# componentize-py runs this module at build time and snapshots the
# interpreter; a standard-library module first imported inside a call would
# not be found at run time. Exercise the paths once here.
Scan(DEFAULT_FILE, b"https://u%40x:t%2Fok@Example.org:8443/p\nftp://x\n\xff\n").items()
retired_name("a/b")
relative_file("./a/../b")


class Migration(exports.Migration):
    def info(self) -> migration.MigratorInfo:
        return migration.MigratorInfo(
            name=NAME,
            description="a git credential-store file (.git-credentials) into git_host:<host>/TOKEN",
        )

    def discover(self, run: migration.RunConfig) -> migration.Discovery:
        source = source_dir(run)
        file = option_file(run)
        path = f"{source}/{file}"
        try:
            data = read_bytes(path, file)
        except FileNotFoundError:
            if os.path.lexists(f"{source}/{retired_name(file)}"):
                # Retired by an earlier run: nothing left to find.
                return migration.Discovery(items=[], problems=[])
            raise Err(types.Error_Invalid(f"{NAME}: no {file} in the source folder"))
        except OSError as e:
            return migration.Discovery(items=[], problems=[migration.Problem(id=file, reason=f"{file}: {why(e)}")])
        except ValueError as e:
            return migration.Discovery(items=[], problems=[migration.Problem(id=file, reason=str(e))])
        scan = Scan(file, data)
        return migration.Discovery(items=scan.items(), problems=scan.problems)

    def read(self, run: migration.RunConfig, ids):
        try:
            source = source_dir(run)
            file = option_file(run)
            scan = Scan(file, read_bytes(f"{source}/{file}", file))
        except Err as e:
            return [Err(e.value.value) for _ in ids]
        except OSError as e:
            return [Err(f"{file}: {why(e)}") for _ in ids]
        except ValueError as e:
            return [Err(str(e)) for _ in ids]
        out = []
        prefix = f"{file}#"
        for id in ids:
            entry = scan.entries.get(id[len(prefix):]) if id.startswith(prefix) else None
            if entry is None:
                out.append(Err(f"{id}: no longer a good line of {file}"))
            else:
                out.append(Ok(entry.token))
        return out

    def retire(self, run: migration.RunConfig, units):
        try:
            source = source_dir(run)
        except Err as e:
            return [Err(e.value.value) for _ in units]
        return [self.retire_one(source, unit) for unit in units]

    def retire_one(self, source: str, unit: str):
        file = relative_file(unit)
        if file is None:
            return Err(f"{unit}: not a file of the source")
        path = f"{source}/{file}"
        bak = f"{source}/{retired_name(file)}"
        try:
            data = read_bytes(path, file)
        except FileNotFoundError:
            # Retired already (a run stopped before the host marked it).
            if os.path.lexists(bak):
                return Ok(None)
            return Err(f"{file}: gone, and no {retired_name(file)} either")
        except OSError as e:
            return Err(f"{file}: {why(e)}")
        except ValueError as e:
            return Err(str(e))
        # Problems are not items, so the host does not hold the unit back
        # for them: refuse here rather than hide lines nobody migrated.
        problems = Scan(file, data).problems
        if problems:
            return Err(
                f"{file}: kept, {len(problems)} entr{'y' if len(problems) == 1 else 'ies'} "
                "could not be migrated (see the FAILED lines); fix or remove them and run again"
            )
        try:
            os.rename(path, bak)
        except OSError as e:
            return Err(f"{file}: cannot rename to {retired_name(file)}: {why(e)}")
        return Ok(None)

    def plan_renames(self, run: migration.RunConfig, existing):
        # Not an in-store move.
        return []
