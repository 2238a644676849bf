"""Commands built from their typed config: one option per config field, its help text from the field.

`videor1 eval --config eval.yaml bench=synthetic --frames 8 --check`: the config's defaults, then the
YAML file, then the options, then `key=value` overrides (nested ones too: `sampling.temperature=0.5`);
`--check` prints the resolved config and exits. A command's options are never written twice: adding a
field to the config adds the option.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import BaseModel, SecretStr, ValidationError

from videor1.cli.common import console, fail

STAGE = {"allow_extra_args": True, "ignore_unknown_options": True}


@dataclass(frozen=True)
class Shortcut:
    """A command-line convenience that sets nested config keys: `--temperature 0.5` is
    `sampling.temperature=0.5`; a flag (no `key`) sets `sets` when given."""

    name: str
    key: str | None = None  # the config key it sets (its help comes from that field)
    sets: dict[str, Any] = field(default_factory=dict)  # for a flag: what it sets
    help: str | None = None

    @property
    def param(self) -> str:
        return "s_" + self.name.replace("-", "_")


def _keyword(name: str, annotation: Any, default: Any = None) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _field_at(schema: type[BaseModel], key: str):
    """The pydantic field at a dotted key (`sampling.temperature`)."""
    *parents, leaf = key.split(".")
    for part in parents:
        schema = _model_of(schema.model_fields[part].annotation)
    return schema.model_fields[leaf]


def _model_of(annotation) -> type[BaseModel] | None:
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _cli_type(annotation) -> tuple[Any, bool]:
    """(the option's Python type, whether it repeats) for a field annotation; None: no option."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _cli_type(args[0]) if len(args) == 1 else (str, False)
    if origin is list:
        inner, _ = _cli_type(typing.get_args(annotation)[0])
        return inner, True
    if origin is typing.Literal:
        return str, False
    if annotation in (bool, int, float, str, Path):
        return annotation, False
    if annotation is SecretStr:
        return str, False
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return None, False
    return str, False


def _default_text(info) -> str:
    if info.is_required():
        return "required"
    default = info.get_default(call_default_factory=True)
    if isinstance(default, BaseModel) or default in (None, [], {}):
        return ""
    return f"default: {default.get_secret_value() if isinstance(default, SecretStr) else default}"


def _help(info, extra: str = "") -> str:
    text = (info.description or "").strip()
    default = extra or _default_text(info)
    return f"{text} ({default})" if default else text


def _deep_merge(base: dict, top: dict) -> dict:
    merged = dict(base)
    for key, value in top.items():
        merged[key] = _deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(
            merged.get(key), dict) else value
    return merged


def resolve(schema: type[BaseModel], path: Path | None, given: dict[str, Any], overrides: list[str]
            ) -> BaseModel:
    """The config: defaults < YAML file < options (`given`, dotted keys) < `key=value` overrides.
    Nested sections start from the schema's own defaults, so an override changes one key of them."""
    from videor1.train.config import apply_overrides

    data: dict[str, Any] = {}
    for name, info in schema.model_fields.items():
        if not info.is_required() and isinstance(default := info.get_default(call_default_factory=True),
                                                 BaseModel):
            data[name] = default.model_dump(mode="json")
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a config file must be a mapping of settings")
        data = _deep_merge(data, loaded)
    for key, value in given.items():
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    unknown = [item for item in overrides if item.startswith("-")]
    if unknown:
        raise ValueError(f"no such option: {' '.join(unknown)} (see --help; settings also go as key=value)")
    data = apply_overrides(data, overrides)
    return schema.model_validate(data)


def settings_help(schema: type[BaseModel]) -> str:
    """Every setting of `schema` as `key=value` help, one paragraph per dotted key: its description and
    default (a command's `--help` epilog)."""
    from rich.markup import escape

    def lines(model: type[BaseModel], prefix: str) -> list[str]:
        out = []
        for name, info in model.model_fields.items():
            nested = _model_of(info.annotation)
            if nested is not None and not _cli_type(info.annotation)[0]:
                out += lines(nested, f"{prefix}{name}.")
            else:
                out.append(f"{prefix}{name}: {_help(info)}")
        return out

    return "Settings (in the YAML recipe, or as key=value):\n\n" + "\n\n".join(map(escape, lines(schema, "")))


def describe_errors(error: ValidationError, flags: dict[str, str]) -> str:
    """One line per problem, naming the option (or the key) to fix."""
    lines = []
    for item in error.errors():
        key = ".".join(map(str, item["loc"]))
        where = f"{flags[key]} ({key}): " if key in flags else f"{key}: " if key else ""
        lines.append(where + item["msg"].removeprefix("Value error, "))
    return "; ".join(lines)


def save_config(config: BaseModel, path: Path) -> None:
    """The resolved config as YAML next to a command's outputs (secrets masked)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")


def config_command(parent: typer.Typer, name: str, schema: type[BaseModel], *,
                   rename: dict[str, str] | None = None, option_kwargs: dict[str, dict] | None = None,
                   shortcuts: tuple[Shortcut, ...] = (), extra: tuple[inspect.Parameter, ...] = ()
                   ) -> Callable:
    """Register `fn(config, **extra)` as command `name`, with one option per field of `schema`
    (`--field-name`, or `rename[field]`), the `shortcuts`, the `extra` (not settings: display), plus
    `--config FILE`, `--check` and trailing `key=value` overrides."""

    rename, option_kwargs = rename or {}, option_kwargs or {}

    def decorate(fn: Callable) -> Callable:
        params = [
            _keyword("ctx", typer.Context, inspect.Parameter.empty),
            _keyword("config_file", Annotated[Path | None, typer.Option(
                "--config", help="YAML file of settings; options and key=value arguments override it.")]),
            _keyword("check", Annotated[bool, typer.Option(
                "--check", help="Print the resolved config and exit.")], False),
        ]
        flags: dict[str, str] = {}  # config key -> its option
        for field_name, info in schema.model_fields.items():
            kind, repeated = _cli_type(info.annotation)
            if kind is None:
                continue
            flag = "--" + rename.get(field_name, field_name.replace("_", "-"))
            flags[field_name] = flag
            decls = [f"{flag}/--no-{flag[2:]}"] if kind is bool else [flag]
            option = typer.Option(*decls, help=_help(info), show_default=False,
                                  **option_kwargs.get(field_name, {}))
            hint = list[kind] | None if repeated else kind | None
            params.append(_keyword(f"f_{field_name}", Annotated[hint, option]))
        for cut in shortcuts:
            flag = f"--{cut.name}"
            if cut.key is not None:
                info = _field_at(schema, cut.key)
                kind, _ = _cli_type(info.annotation)
                default = _default_of(schema, cut.key)
                option = typer.Option(flag, help=cut.help or _help(info, f"default: {default}"),
                                      show_default=False)
                flags[cut.key] = flag
                params.append(_keyword(cut.param, Annotated[kind | None, option]))
            else:
                params.append(_keyword(cut.param, Annotated[bool, typer.Option(flag, help=cut.help)], False))
        params.extend(extra)

        def command(**kwargs: Any) -> None:
            ctx: typer.Context = kwargs.pop("ctx")
            path, check = kwargs.pop("config_file"), kwargs.pop("check")
            given: dict[str, Any] = {}
            for field_name in schema.model_fields:
                value = kwargs.pop(f"f_{field_name}", None)
                if value is not None:
                    given[field_name] = [str(v) for v in value] if isinstance(value, list) else (
                        str(value) if isinstance(value, Path) else value)
            for cut in shortcuts:
                value = kwargs.pop(cut.param)
                if cut.key is not None and value is not None:
                    given[cut.key] = value
                elif cut.key is None and value:
                    given.update(cut.sets)
            try:
                config = resolve(schema, path, given, list(ctx.args))
            except ValidationError as error:
                fail(describe_errors(error, flags))
            except (ValueError, OSError) as error:
                fail(str(error))
            if check:
                console.print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), markup=False,
                              highlight=False, end="")
                return
            fn(config, **kwargs)

        command.__signature__ = inspect.Signature(params)
        command.__doc__ = fn.__doc__
        command.__name__ = fn.__name__
        parent.command(name, context_settings=STAGE)(command)
        return fn

    return decorate


def _default_of(schema: type[BaseModel], key: str) -> Any:
    *parents, leaf = key.split(".")
    value: Any = None
    model = schema
    for part in parents:
        value = model.model_fields[part].get_default(call_default_factory=True)
        model = type(value)
    return getattr(value, leaf) if value is not None else model.model_fields[leaf].default
