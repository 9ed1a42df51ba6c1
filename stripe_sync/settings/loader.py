"""Reading the settings, once: the defaults, the project file, the environment and `.env`,
then the flags, each value with where it came from (see `stripe_sync.settings`).

This module is the only one that reads the process environment. It also loads `.env` into
it (never over a variable already set), as Dagster does for a code location, so a key given
in `.env` resolves the same in `stripe-sync` and in `dagster dev`."""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from dotenv import dotenv_values
from pydantic.fields import FieldInfo
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from stripe_sync.core.errors import ConfigError
from stripe_sync.settings.model import (
    KEY,
    URL,
    Secret,
    Settings,
    is_rule,
    secret_kind,
    setting_fields,
    suggestion,
    validated,
    variables_of,
)

PROJECT_FILE = "stripe_sync.yaml"
CONFIG_FILE_VARIABLE = "STRIPE_SYNC_CONFIG"
# A secret in the project file: a reference to its variable, `${NAME}`.
_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def environment_for_child(
    settings: Settings, source: str, config_file: Path | None = None
) -> dict[str, str]:
    """The environment of a child process (e.g. `dagster dev`) that must load these settings:
    this process's, with the settings `source` made here (single values) set as their
    variables, and the project file named by a --config flag (`config_file`)."""
    variables = {}
    for key, info in setting_fields():
        if settings.source(key) == source:
            section, name = key.split(".")
            value = getattr(getattr(settings, section), name)
            variables[variables_of(info)[0]] = (
                value.value if isinstance(value, Secret) else str(value)
            )
    if config_file is not None:
        variables[CONFIG_FILE_VARIABLE] = str(config_file.resolve())
    return {**os.environ, **variables}


def load_settings(
    *,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """The settings: defaults < project file < environment and .env < `overrides` (flags,
    by key: {"sync.batch_size": 25}; None leaves a key alone). A ConfigError names the key,
    where its value came from and what was expected."""
    cwd = cwd or Path.cwd()
    dotenv = _dotenv(cwd / ".env")
    if environ is None:
        environ = os.environ
        _export(dotenv)
    variables = _Variables(environ, dotenv)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    path = _project_file(config_file, variables, cwd)
    if path is not None:
        _read_project_file(path, variables, values, sources)
    _read_environment(variables, values, sources)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key], sources[key] = value, "flag --" + key.split(".")[1].replace("_", "-")
    return validated(values, sources)


# Names this module added to the process environment from `.env`, so a second load still
# says they came from `.env`.
_EXPORTED: dict[str, str] = {}


def _export(dotenv: Mapping[str, str]) -> None:
    """`.env` into the process environment, never over a variable already set: Dagster
    resolves `dg.EnvVar` there, and does the same with `.env` for a code location."""
    for name, value in dotenv.items():
        if os.environ.setdefault(name, value) == value:
            _EXPORTED[name] = value


@dataclass(frozen=True)
class _Variables:
    """The environment over `.env`: a variable's value and which of the two set it."""

    environ: Mapping[str, str]
    dotenv: Mapping[str, str]

    def get(self, name: str) -> tuple[str, str] | None:
        """(value, "env" or ".env") of a variable set to something other than blanks."""
        value = self.environ.get(name, "").strip()
        if value and not (name in _EXPORTED and _EXPORTED[name].strip() == value):
            return value, "env"
        value = self.dotenv.get(name, "").strip()
        return (value, ".env") if value else None


def _dotenv(path: Path) -> dict[str, str]:
    return {k: v for k, v in dotenv_values(path).items() if v is not None} if path.exists() else {}


def _project_file(config_file: str | Path | None, variables: _Variables, cwd: Path):
    named = config_file or (variables.get(CONFIG_FILE_VARIABLE) or ("",))[0]
    if named:
        path = cwd / Path(named).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"The settings file {path} does not exist: fix --config or {CONFIG_FILE_VARIABLE}."
            )
        return path
    default = cwd / PROJECT_FILE
    return default if default.is_file() else None


def _read_project_file(
    path: Path, variables: _Variables, values: dict[str, Any], sources: dict[str, str]
) -> None:
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path.name} is not valid YAML{line}: fix its syntax.") from None
    if not isinstance(content, dict):
        raise ConfigError(f"{path.name} must hold sections such as `stripe:` and `catalog:`.")
    fields = dict(setting_fields())
    for section, entries in content.items():
        if not isinstance(entries, dict):
            known = list(Settings.model_fields)
            raise ConfigError(
                f"{path.name}: {section} must be a section of settings such as "
                f"{', '.join(known)}{suggestion(section, known)}."
            )
        for name, value in entries.items():
            key = f"{section}.{name}"
            if key not in fields:
                raise ConfigError(
                    f"{path.name}: {key} is not a setting{suggestion(key, list(fields))}."
                )
            values[key], sources[key] = _file_value(path.name, key, value, fields[key], variables)


def _file_value(file: str, key: str, value: Any, info: FieldInfo, variables: _Variables):
    """A value of the project file and its source: a `${NAME}` or `{env: NAME}` reference
    is read from the environment; a secret must be one."""
    variable = _reference(value)
    if variable is not None:
        resolved = (variables.get(variable) or (None,))[0]
        source = f"{file} (${{{variable}}}" + (")" if resolved else ", not set)")
        if secret_kind(info) is not None:
            return (Secret(resolved, variable) if resolved else None), source
        return (resolved or None), source
    kind = secret_kind(info)
    if kind == KEY or (kind == URL and value is not None and _has_password(str(value))):
        raise ConfigError(
            f"{file}: {key} holds a secret as a literal value: write a reference to an "
            f"environment variable instead, e.g. {key.split('.')[1]}: ${{{variables_of(info)[0]}}}."
        )
    if kind == URL and value is not None:
        return Secret(str(value)), file
    return value, file


def _reference(value: Any) -> str | None:
    if isinstance(value, str) and (match := _REFERENCE.match(value.strip())):
        return match.group(1)
    if isinstance(value, dict) and set(value) == {"env"} and isinstance(value["env"], str):
        return value["env"]
    return None


def _has_password(url: str) -> bool:
    try:
        return bool(make_url(url).password)
    except ArgumentError:
        return False


def _read_environment(
    variables: _Variables, values: dict[str, Any], sources: dict[str, str]
) -> None:
    for key, info in setting_fields():
        for variable in variables_of(info):
            found = variables.get(variable)
            if found is not None:
                raw, origin = found
                values[key], sources[key] = _from_text(raw, variable, info), f"{origin} {variable}"
                break


def _from_text(raw: str, variable: str, info: FieldInfo) -> Any:
    if secret_kind(info) is not None:
        return Secret(raw, variable)
    if typing.get_origin(info.annotation) is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    if typing.get_origin(info.annotation) is dict or is_rule(info):
        try:  # JSON, or YAML's flow style: {id: sku, price: price_cents}
            return yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(
                f'{variable} must be JSON such as {{"id": "sku"}}, not {raw!r}.'
            ) from None
    return raw
