"""{{name}}: a Keyward migrator (world `migrator`) in Python.

Run with `keyward migrate plan|run {{name}} --source DIR`: every file NAME
directly in DIR becomes the secret `<scope>/NAME` (option `scope`, default
`global`); once it is written the file is renamed to `.NAME.migrated.bak`
beside it. The host drives the run (discover, read, write, then retire) and
every call is a fresh instance, so nothing is remembered between calls.

componentize-py maps the exported interface `migration` to the class
`Migration` below; `discover` returns its value or raises `Err(error)`,
`read` and `retire` return one `Ok(...)` or `Err("reason")` per id.
componentize-py runs this module at build time and snapshots it; there is
no file system at run time, so import every module at the top.
"""

import os
import re

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.exports import migration
from wit_world.imports import types

NAME = "{{name}}"
MAX_VALUE = 64 * 1024
SECRET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
SCOPE = re.compile(r"global|[a-z][a-z0-9_]{0,31}:[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def quoted(text: str) -> str:
    """A name as it is when plain, else escaped and cut short."""
    return text if SECRET_NAME.fullmatch(text) else repr(text[:64])


def source_dir(run: migration.RunConfig) -> str:
    if run.source is None or not run.source.startswith("/"):
        raise Err(types.Error_Invalid(f"{NAME} reads a folder: give it with --source DIR"))
    return run.source


def scope(run: migration.RunConfig) -> str:
    value = "global"
    for key, v in run.options:
        if key == "scope":
            value = v
    if not SCOPE.fullmatch(value):
        raise Err(types.Error_Invalid(f"option scope={quoted(value)}: not a scope (global or KIND:ID)"))
    return value


def read_value(source: str, name: str):
    if not SECRET_NAME.fullmatch(name):
        return Err(f"{quoted(name)}: not a file of the source")
    try:
        with open(f"{source}/{name}", "rb") as f:
            data = f.read(MAX_VALUE + 1)
    except OSError as e:
        return Err(f"{name}: {e.strerror or type(e).__name__}")
    value = data.strip()
    if not value:
        return Err(f"{name}: empty")
    if len(data) > MAX_VALUE:
        return Err(f"{name}: larger than {MAX_VALUE} bytes")
    return Ok(value)


def retire_one(source: str, name: str):
    if not SECRET_NAME.fullmatch(name):
        return Err(f"{quoted(name)}: not a file of the source")
    path, bak = f"{source}/{name}", f"{source}/.{name}.migrated.bak"
    if not os.path.lexists(path):
        # Retired already, by a run that stopped before the host noted it.
        return Ok(None) if os.path.lexists(bak) else Err(f"{name}: gone, and no .bak either")
    try:
        os.rename(path, bak)
    except OSError as e:
        return Err(f"{name}: cannot rename: {e.strerror or type(e).__name__}")
    return Ok(None)


quoted("warm-up\n")  # into the snapshot


class Migration(exports.Migration):
    def info(self) -> migration.MigratorInfo:
        return migration.MigratorInfo(name=NAME, description="Files of a folder: NAME → <scope>/NAME")

    def discover(self, run: migration.RunConfig) -> migration.Discovery:
        source, target_scope = source_dir(run), scope(run)
        items, problems = [], []
        for name in sorted(os.listdir(source)):
            if name.startswith("."):
                continue  # retired .NAME.migrated.bak files, editor leftovers
            if not SECRET_NAME.fullmatch(name):
                problems.append(migration.Problem(id=name, reason=f"{quoted(name)}: not a secret name"))
                continue
            items.append(
                migration.Item(
                    id=name,
                    target=f"{target_scope}/{name}",
                    description=f"migrated from the file {name}",
                    binding=migration.Binding_None_(),
                    unit=name,
                )
            )
        return migration.Discovery(items=items, problems=problems)

    def read(self, run: migration.RunConfig, ids):
        try:
            source = source_dir(run)
        except Err as e:
            return [Err(e.value.value) for _ in ids]
        return [read_value(source, id) for id in ids]

    def retire(self, run: migration.RunConfig, units):
        try:
            source = source_dir(run)
        except Err as e:
            return [Err(e.value.value) for _ in units]
        return [retire_one(source, unit) for unit in units]

    def plan_renames(self, run: migration.RunConfig, existing):
        return []  # not an in-store move
