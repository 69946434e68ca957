"""The report's settings: report.toml at the repository root, read with tomllib.

`settings()` is what the notebooks read. The file named by env CHARRNN_SETTINGS
(`make report SETTINGS=my.toml`) is laid over the repository's report.toml,
key by key, so it only needs the keys it changes; a key the repository's file
does not have is refused with one line naming it. Env CHARRNN_CORPUS
(`make report CORPUS=path`) overrides the corpus, env CHARRNN_PARTS
(`make report PARTS=assignment`, comma-separated) the parts. Env CHARRNN_PROFILE=quick
lays the file's [quick] tables over the rest: the same code paths on small
numbers, for the tests.
"""
from __future__ import annotations

import copy
import os
import tomllib
from pathlib import Path

from ..paths import repo_root

PROFILES = ("full", "quick")


class SettingsError(ValueError):
    """A settings file that cannot be used."""


def default_path() -> Path:
    return repo_root() / "report.toml"


def profile_name(name: str | None = None, environ=None) -> str:
    """`name`, or env CHARRNN_PROFILE (default "full")."""
    environ = os.environ if environ is None else environ
    name = (name or environ.get("CHARRNN_PROFILE") or "full").strip().lower()
    if name not in PROFILES:
        raise SettingsError(f"CHARRNN_PROFILE must be one of {', '.join(PROFILES)}, got {name!r}")
    return name


class Settings(dict):
    """The settings as nested dicts, with the profile and the files they came from."""
    profile: str = "full"
    sources: tuple = ()


def settings(path=None, profile: str | None = None, environ=None) -> Settings:
    """The report's settings: path (default env CHARRNN_SETTINGS) over the repository's report.toml,
    env CHARRNN_CORPUS over the corpus, env CHARRNN_PARTS over the parts, and the [quick] tables when the
    profile is quick. environ: the environment to read (default os.environ; the build passes the kernels')."""
    env = os.environ if environ is None else environ
    base = _read(default_path())
    sources = [default_path()]
    path = path or env.get("CHARRNN_SETTINGS") or None
    if path and Path(path).resolve() != default_path().resolve():
        _overlay(base, _read(Path(path)), Path(path), "")
        sources.append(Path(path))
    quick = base.pop("quick", {})
    prof = profile_name(profile, env)
    if prof == "quick":
        _overlay(base, quick, sources[0], "quick.")
    if env.get("CHARRNN_CORPUS"):
        base["corpus"] = env["CHARRNN_CORPUS"]
    if env.get("CHARRNN_PARTS"):
        base["parts"] = [p.strip() for p in env["CHARRNN_PARTS"].split(",") if p.strip()]
    out = Settings(base)
    out.profile, out.sources = prof, tuple(sources)
    return out


def _read(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise SettingsError(f"settings file not found: {path}") from None
    except OSError as exc:
        raise SettingsError(f"cannot read settings file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {path} is not valid TOML: {exc}") from None


# tables that may also set any TrainConfig field (its value is checked by TrainConfig)
_OPEN_TABLES = ("cells.rnn", "cells.gru", "cells.lstm", "budget")


def _overlay(base: dict, over: dict, path: Path, prefix: str) -> None:
    """Lay over onto base in place, refusing keys base does not have and values of another type."""
    for key, value in over.items():
        name = f"{prefix}{key}"
        if prefix.startswith("quick."):
            name = name[len("quick."):]
        if key not in base:
            if name.rsplit(".", 1)[0] in _OPEN_TABLES and key in _train_fields():
                base[key] = copy.deepcopy(value)
                continue
            raise SettingsError(f"{path}: unknown setting {name!r}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise SettingsError(f"{path}: {name!r} must be a table")
            _overlay(base[key], value, path, f"{prefix}{key}.")
        elif not _same_kind(base[key], value):
            raise SettingsError(f"{path}: {name!r} must be {_kind(base[key])}, got {value!r}")
        else:
            base[key] = copy.deepcopy(value)


def _train_fields() -> set:
    import dataclasses
    from ..config import TrainConfig
    return {f.name for f in dataclasses.fields(TrainConfig)}


def _same_kind(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, (int, float)):
        return isinstance(b, (int, float))
    return type(a) is type(b)


def _kind(v) -> str:
    return {bool: "true or false", int: "a number", float: "a number", str: "a string", list: "a list"}.get(type(v), "a table")
