"""The one settings parser of every Tidings process: a typed pydantic-settings model per
process whose fields are read from their command-line flag, else their `TIDINGS_*`
environment variable, else their default, and validated once at start.

A field is declared with `setting(default, "TIDINGS_NAME", help=...)`; its flag is
`--field-name` unless `flags` says otherwise. argparse only collects the flags given
(nothing else: no defaults, no types), and hands them to the model as its highest
source. `Model.load()` prints what is wrong and exits 2.

Metrics mean one thing everywhere: `--metrics-port 0` is any free port; `--no-metrics`
(or the variable set empty) is no metrics listener.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from tidings_runtime.durations import parse_duration
from tidings_runtime.logs import LogFormat

SETTINGS_EXIT_CODE = 2


class SettingsError(ValueError):
    """Settings a process cannot start with; the message says which and why."""


def setting(default: Any, env: str, *, help: str = "", flags: Sequence[str] = (), cli: bool = True,
            append: bool = False, off_flag: str | None = None, secret: bool = False, **constraints: Any) -> Any:
    """A field read from `env` and from `flags` (default `--field-name`; `cli=False`: no flag;
    `append`: repeatable; `off_flag`: a flag that sets it to None; `secret`: never echoed)."""
    extra: dict[str, Any] = {"flags": list(flags), "cli": cli, "append": append, "off_flag": off_flag,
                             "secret": secret}
    return Field(default, validation_alias=env, description=help, json_schema_extra=extra, **constraints)


def _off_when_empty(value: Any) -> Any:
    return None if value == "" else value


def valid_host_port(value: str) -> str:
    """`value` if it is HOST:PORT with a port 0-65535, else ValueError."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT with a port 0-65535")
    return value


Port = Annotated[int, Field(ge=0, le=65535)]
MetricsPort = Annotated[Port | None, BeforeValidator(_off_when_empty)]
Seconds = Annotated[float, Field(gt=0)]


def _duration(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


# Seconds as operators write them: `30s`, `5m`, `5d` (tidings_runtime.durations), or a number.
Duration = Annotated[float, BeforeValidator(_duration), Field(gt=0)]
HostPort = Annotated[str, AfterValidator(valid_host_port)]
LogLevel = Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(lambda v: v.lower()
                                                                                  if isinstance(v, str) else v)]


class TidingsSettings(BaseSettings):
    """The base of every settings class: flags > environment > defaults."""

    model_config = SettingsConfigDict(frozen=True, validate_by_name=True, validate_by_alias=True,
                                      extra="forbid", case_sensitive=True)
    prog: ClassVar[str] = "tidings"

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource,
                                   dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource,
                                   ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings

    @classmethod
    def parser(cls) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog=cls.prog, description=(cls.__doc__ or "").strip(),
                                         argument_default=argparse.SUPPRESS)
        for name, info in cls.model_fields.items():
            extra = _extra(info)
            if not extra["cli"]:
                continue
            flags = extra["flags"] or ["--" + name.replace("_", "-")]
            switch = info.annotation is bool   # --flag [true|false]; its off_flag sets False
            if switch:
                parser.add_argument(*flags, dest=name, action="store", nargs="?", const=True, help=_help(info))
            else:
                parser.add_argument(*flags, dest=name, action="append" if extra["append"] else "store",
                                    help=_help(info))
            if extra["off_flag"]:
                parser.add_argument(extra["off_flag"], dest=name, action="store_const", const=False if switch else None,
                                    help=f"{'false' if switch else 'none'} (sets {flags[0]} off)")
        return parser

    @classmethod
    def parse(cls, argv: Sequence[str] | None = None) -> Self:
        """The settings from `argv` (default: the command line) and the environment;
        SettingsError when they are not valid (argparse exits 2 on an unknown flag)."""
        flags = vars(cls.parser().parse_args(argv))
        try:
            return cls(**flags)
        except ValidationError as exc:
            raise SettingsError(cls._explain(exc)) from None

    @classmethod
    def load(cls, argv: Sequence[str] | None = None) -> Self:
        """`parse`, or print why not and exit 2."""
        try:
            return cls.parse(argv)
        except SettingsError as exc:
            print(f"{cls.prog}: {exc}", file=sys.stderr)
            raise SystemExit(SETTINGS_EXIT_CODE) from None

    @classmethod
    def _explain(cls, exc: ValidationError) -> str:
        by_alias = {info.validation_alias: name for name, info in cls.model_fields.items()}
        problems = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            if error["loc"]:
                key = str(error["loc"][0])
                name = by_alias.get(key, key)
                info = cls.model_fields.get(name)
                shown = "" if info is None or _extra(info)["secret"] else f" (got {error['input']!r})"
                problems.append(f"{cls._where(name)}: {message}{shown}")
            else:
                problems.append(message)
        return "; ".join(problems)

    @classmethod
    def _where(cls, name: str) -> str:
        info = cls.model_fields.get(name)
        if info is None:
            return name
        extra = _extra(info)
        flag = (extra["flags"] or ["--" + name.replace("_", "-")])[0]
        return f"{flag} (env {info.validation_alias})" if extra["cli"] else str(info.validation_alias)


class ServerSettings(TidingsSettings):
    """The settings every serving process has."""

    ready_file: Path | None = setting(None, "TIDINGS_READY_FILE",
                                      help="once serving, write the bound ports here as JSON")
    log_level: LogLevel = setting("info", "TIDINGS_LOG_LEVEL", help="debug, info, warning or error")
    log_format: LogFormat = setting("json", "TIDINGS_LOG_FORMAT",
                                    help="json (one object a line, tidings_runtime/logs.py) or text")


def _extra(info: FieldInfo) -> dict[str, Any]:
    extra = info.json_schema_extra
    if isinstance(extra, dict):
        return extra
    return {"flags": [], "cli": True, "append": False, "off_flag": None, "secret": False}


def _help(info: FieldInfo) -> str:
    default = "none" if info.default is None else info.default
    return f"{info.description or ''} (env {info.validation_alias}; default {default})".replace("%", "%%")
