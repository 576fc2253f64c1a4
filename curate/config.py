"""Recipe configuration, each key declared once: a pydantic field with its default and its help.

`curate build` and every `train` verb read a recipe the same way, and derive the rest from the
recipe model:

- `load_recipe(model, path, *layers)`: the YAML file, then layers of dotted keys applied in order
  (`KEY=VALUE` arguments from `parse_overrides`, then the flags), validated; the first problem
  is one line naming the file and the key (`'training.epoch': unknown key`).
- `Flag` + `with_flags`: a Typer option for each everyday key, its type, help and default read
  from the field, so they cannot drift from the model.
- `keys_help(model)`: every key with its default and help, the `--help` epilog of a command.

Why torchtune's model (a config file plus `key=value`) rather than TRL's `TrlParser` (argparse
generated from dataclasses, one flag per field): our recipes are nested sections, and a dotted
key addresses a section's key the same way in a file and on the command line, with YAML values
(`lora.target_modules=[q_proj,v_proj]`); a flag per key would put some fifty options in every
`--help` (TrainingArguments alone has about a hundred), and a mistyped key would be an argparse
"unrecognized argument" instead of a line naming the key. From TrlParser we take the other half:
the few flags we keep are generated from the model's fields, not written beside them.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import textwrap
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, TypeVar, Union

import typer
import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from curate.errors import CurateError

M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., Any])


class _Null:
    def __repr__(self) -> str:
        return "null"


NULL = _Null()  # in a layer: set the key to null (a plain None means "not given", e.g. a flag left out)
OVERRIDE = re.compile(r"^[A-Za-z_]\w*(\.\w+)*=")  # KEY=VALUE with a dotted key
HELP_WIDTH = 78  # click draws help at most 80 columns wide, indented by 2


# -- reading a recipe -------------------------------------------------------------------------


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A recipe file as a dict; errors name the file."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise CurateError(f"{path}: cannot read the recipe ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise CurateError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise CurateError(f"{path}: a recipe is a mapping of keys to values")
    return raw


def merge(data: dict[str, Any], layer: dict[str, Any], origin: str = "command line") -> dict[str, Any]:
    """Set each dotted key of `layer` in the nested dict `data` (in place; returned).

    None is "not given" and leaves the key as it is; `NULL` sets it to null. A missing or null
    section on the way is created, so setting one key of an optional section
    (`lengths.tokenizer=smollm2`) turns it on; a dict value is merged into the dict already there
    (`map`, or `dedupe.semantic={}` to turn a section on with the file's settings kept).
    """
    for dotted, value in layer.items():
        if value is None:
            continue
        if value is NULL:
            value = None
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise CurateError(f"{origin}: '{dotted}': '{part}' is not a section")
            node = child
        if isinstance(value, dict) and isinstance(node.get(leaf), dict):
            _update_nested(node[leaf], value)
        else:
            node[leaf] = value
    return data


def _update_nested(target: dict[str, Any], value: dict[str, Any]) -> None:
    for key, item in value.items():  # keys as they are: a column name may hold a dot
        if isinstance(item, dict) and isinstance(target.get(key), dict):
            _update_nested(target[key], item)
        else:
            target[key] = item


def validate(model: type[M], data: dict[str, Any], origin: str) -> M:
    """Validate a recipe dict; the first problem becomes one line naming where it came from and the key."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise CurateError(f"{origin}: '{key}': {message}") from None


def load_recipe(model: type[M], path: str | Path | None, *layers: dict[str, Any]) -> M:
    """The recipe file (if any) with each layer of dotted keys applied in order, validated."""
    origin = str(path) if path is not None else "command line"
    data = read_yaml(path) if path is not None else {}
    for layer in layers:
        merge(data, layer, origin)
    return validate(model, data, origin)


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """`training.epochs=3 lora.r=8` as {dotted key: YAML-parsed value}; `key=null` gives NULL (sets null)."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or key.startswith("-"):
            raise CurateError(f"overrides are KEY=VALUE (e.g. training.epochs=3), got '{pair}'")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            parsed = value
        overrides[key.strip()] = NULL if parsed is None else parsed
    return overrides


def split_overrides(tokens: Sequence[str]) -> tuple[list[str], list[str]]:
    """Positional arguments as (the others, the KEY=VALUE ones); a token naming an existing file is never a key."""
    keys = [t for t in tokens if OVERRIDE.match(t) and not Path(t).exists()]
    return [t for t in tokens if t not in keys], keys


# -- the keys of a model ----------------------------------------------------------------------


def _strip_optional(annotation: Any) -> Any:
    """`X | None` -> X (other unions are returned as they are)."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def section_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a section field (`LoraSection`, or `LengthsConfig | None`), None for a plain key."""
    inner = _strip_optional(annotation)
    return inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None


def field_of(model: type[BaseModel], key: str) -> FieldInfo:
    """The pydantic field behind a dotted key (raises KeyError for a key the model does not have)."""
    *parents, leaf = key.split(".")
    node = model
    for part in parents:
        section = section_model(node.model_fields[part].annotation)
        if section is None:
            raise KeyError(key)
        node = section
    return node.model_fields[leaf]


def default_of(model: type[BaseModel], key: str) -> Any:
    """A dotted key's default as the recipe model sets it: a section made by the recipe's own default
    factory (`train classify`'s `lora.enabled: false`) wins over the section class's field default.
    """
    first, *rest = key.split(".")
    info = model.model_fields[first]
    value = info.get_default(call_default_factory=True)
    for part in rest:
        section = section_model(info.annotation)
        if section is None:
            raise KeyError(key)
        info = section.model_fields[part]
        value = getattr(value, part) if isinstance(value, BaseModel) else info.get_default(call_default_factory=True)
    return value


def _optional_section(model: type[BaseModel], key: str) -> str | None:
    """The outermost section on the way to `key` that is off (null) unless set, e.g. `lengths`."""
    node: type[BaseModel] | None = model
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1], start=1):
        if node is None:
            return None
        info = node.model_fields[part]
        if info.get_default(call_default_factory=True) is None:
            return ".".join(parts[:depth])
        node = section_model(info.annotation)
    return None


def show_value(value: Any) -> str:
    """A default as it is written in a recipe or a KEY=VALUE (YAML: null, true, [a, b])."""
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if value is None or isinstance(value, (bool, list, dict)):
        return json.dumps(value).replace('"', "")
    return str(value)


def choices(annotation: Any) -> list[str]:
    """The allowed values of a Literal or Enum key ([] for other keys)."""
    inner = _strip_optional(annotation)
    if typing.get_origin(inner) is Literal:
        return [str(v) for v in typing.get_args(inner)]
    if isinstance(inner, type) and issubclass(inner, Enum):
        return [str(member.value) for member in inner]
    return []


def iter_sections(
    model: type[BaseModel], prefix: str = "", field: FieldInfo | None = None
) -> Iterator[tuple[str, type[BaseModel], FieldInfo | None, list[tuple[str, FieldInfo]]]]:
    """Each section of a model, the top level first, with its plain keys: (path, model, its field, keys)."""
    leaves = [
        (f"{prefix}{name}", info) for name, info in model.model_fields.items() if not section_model(info.annotation)
    ]
    yield prefix.rstrip("."), model, field, leaves
    for name, info in model.model_fields.items():
        sub = section_model(info.annotation)
        if sub is not None:
            yield from iter_sections(sub, f"{prefix}{name}.", info)


def keys_help(model: type[BaseModel], example: str = "training.epochs=3") -> str:
    """Every key of a recipe model with its default and help: the epilog of a command's `--help`.

    One paragraph per section, each marked `\\b` so click keeps its lines as written.
    """
    intro = (
        "Recipe keys: set them in a recipe file or as KEY=VALUE arguments, the value in YAML "
        f"(e.g. {example}); flags above set the same keys. KEY=DEFAULT, then what it does:"
    )
    paragraphs = [intro]
    for path, section, field, keys in iter_sections(model):
        lines = []
        if path:
            about = (field.description if field is not None and field.description else None) or _first_line(section)
            lines += _wrap(f"{path}: {about}", HELP_WIDTH, "", "  ")
        for key, info in keys:
            lines += _key_lines(key, info, default_of(model, key))
        if lines:
            paragraphs.append("\b\n" + "\n".join(lines))
    return "\n\n".join(paragraphs)


def _first_line(model: type[BaseModel]) -> str:
    return (inspect.getdoc(model) or "").split("\n\n")[0].replace("\n", " ")


def _key_lines(key: str, info: FieldInfo, default: Any) -> list[str]:
    left = f"  {key}={show_value(default)}"
    allowed = choices(info.annotation)
    text = (info.description or "") + (f" [{' | '.join(allowed)}]" if allowed else "")
    column = 34
    if len(left) >= column - 1:
        return [left, *_wrap(text, HELP_WIDTH, " " * column, " " * column)]
    wrapped = _wrap(text, HELP_WIDTH - column, "", "") or [""]
    return [left.ljust(column) + wrapped[0], *(" " * column + line for line in wrapped[1:])]


def _wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    """Wrap at spaces only: a path, a choice list or `chat-template:` stays whole."""
    return textwrap.wrap(
        text, width, initial_indent=first, subsequent_indent=rest, break_long_words=False, break_on_hyphens=False
    )


# -- flags --------------------------------------------------------------------------------------

FlagValues = Optional[dict[str, Any]]  # what a command decorated by `with_flags` receives as `flags`


class Flag:
    """An everyday recipe key offered as an option, e.g. `Flag("training.learning_rate", "--lr")`.

    Its type, help and default come from the recipe field; the names default to `--<leaf>`
    (`--<leaf>/--no-<leaf>` for a boolean). `convert` turns what the option gives into the
    recipe value, `cli_type` being the option's own type then (e.g. `--map OLD=NEW` pairs -> dict);
    `also` names keys the flag sets to the same value (`--full-loss`: completion and assistant loss).
    """

    def __init__(
        self,
        key: str,
        *names: str,
        convert: Callable[[Any], Any] | None = None,
        cli_type: Any = None,
        metavar: str | None = None,
        also: tuple[str, ...] = (),
    ):
        self.key = key
        self.names = names
        self.convert = convert
        self.cli_type = cli_type
        self.metavar = metavar
        self.also = also

    @property
    def option(self) -> str:
        """The option's long name as a user types it (`--top-p`), for messages."""
        return (self.names[0] if self.names else "--" + self.key.rsplit(".", 1)[-1].replace("_", "-")).split("/")[0]

    @property
    def param(self) -> str:
        """The Python parameter the option fills (any name typer accepts; never shown)."""
        return "flag__" + self.key.replace(".", "__")

    def parameter(self, model: type[BaseModel]) -> inspect.Parameter:
        """The Typer option of this key: an `Optional` whose None means 'not given'."""
        info = field_of(model, self.key)
        kind = self.cli_type or _strip_optional(info.annotation)
        if section_model(kind) is not None:
            raise TypeError(f"{self.key} is a section: give a cli_type and convert")
        leaf = self.key.rsplit(".", 1)[-1].replace("_", "-")
        names = self.names or ((f"--{leaf}/--no-{leaf}",) if kind is bool else (f"--{leaf}",))
        allowed = choices(kind)
        default = default_of(model, self.key)
        shown = "off" if default is None and section_model(info.annotation) else show_value(default)
        section = _optional_section(model, self.key)
        turns_on = f" Turns {section} on." if section and section != self.key else ""
        metavar = self.metavar or ("[" + "|".join(allowed) + "]" if allowed and not isinstance(kind, type) else None)
        option = typer.Option(
            *names, help=f"{info.description or ''}{turns_on}  [default: {shown}]", metavar=metavar, show_default=False
        )
        if typing.get_origin(kind) is Literal:  # checked by the model, named by its key, like KEY=VALUE
            kind = str
        return inspect.Parameter(
            self.param, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[Optional[kind], option]
        )

    def value(self, given: Any) -> Any:
        """The recipe value for what the option received."""
        return self.convert(given) if self.convert else given


def with_flags(model: type[BaseModel], flags: Sequence[Flag]) -> Callable[[F], F]:
    """Give a Typer command one option per flag, in place of its `flags` parameter.

    The command receives `flags={dotted key: value}` for the options given on the command line
    (the others are left out, so a recipe file's value stands) and passes it to `load_recipe`.
    """

    def decorate(func: F) -> F:
        hints = typing.get_type_hints(func, include_extras=True)  # resolved in the command's own module
        params = [
            p.replace(annotation=hints.get(p.name, p.annotation)) for p in inspect.signature(func).parameters.values()
        ]
        at = next(i for i, p in enumerate(params) if p.name == "flags")
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]
        generated = [flag.parameter(model) for flag in flags]
        signature = inspect.Signature([*own[:at], *generated, *own[at + 1 :]], return_annotation=None)

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            given = {flag: kwargs.pop(flag.param, None) for flag in flags}
            values = {
                key: flag.value(v)
                for flag, v in given.items()
                if v not in (None, [], ())
                for key in (flag.key, *flag.also)
            }
            return func(**kwargs, flags=values)

        command.__signature__ = signature  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
        return command  # type: ignore[return-value]

    return decorate


def from_flags(model: type[M], flags: Sequence[Flag], values: dict[str, Any]) -> M:
    """The model from flag values alone, for a command with no recipe file (`train generate`'s sampling, the
    judge of `curate review judge`); the first problem is one line naming the flag (`--top-p: ...`)."""
    try:
        return model.model_validate(merge({}, values))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        if not key:  # a rule across keys (a model validator): its own message names the flags
            raise CurateError(str(first.get("ctx", {}).get("error", first["msg"]))) from None
        name = next((flag.option for flag in flags if flag.key == key), key)
        raise CurateError(f"{name}: {first['msg']}") from None
