"""Loading TOML files into pydantic models with errors that name the file, key and what is allowed.

Used for the configuration file and for every file under rules/: an unknown key, a wrong
type or a value outside the allowed set stops start-up with a message an administrator can
act on, e.g. "rules/routing.toml: closed_school: input should be 'withhold' or 'defer'".
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.errors import GatewayError

ModelT = TypeVar("ModelT", bound=BaseModel)


class Strict(BaseModel):
    """Base for config and rules models: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def read_toml(path: Path, error: type[GatewayError]) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from exc


def load_toml_model(path: Path, model: type[ModelT], error: type[GatewayError]) -> ModelT:
    """Read `path` and validate it as `model`, raising `error` naming every bad key."""
    return validate(read_toml(path, error), model, path, error)


def validate(data: object, model: type[ModelT], path: Path, error: type[GatewayError]) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(describe(exc, path, model)) from None


def describe(exc: ValidationError, path: Path, model: type[BaseModel]) -> str:
    lines = []
    for problem in exc.errors():
        key = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        if problem["type"] == "extra_forbidden":
            allowed = _allowed_keys(model, problem["loc"])
            lines.append(f"{path}: {key}: unknown key{allowed}")
        elif problem["type"] == "missing":
            lines.append(f"{path}: {key}: required key is missing")
        else:
            lines.append(f"{path}: {key}: {problem['msg'].lower()} (got {problem['input']!r})")
    return "\n".join(lines)


def _allowed_keys(root: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    # pydantic does not say which keys *are* allowed; walk the model to tell the administrator.
    model: object = root
    for part in loc[:-1]:
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return ""
        model = fields[part].annotation
    fields = getattr(model, "model_fields", None)
    if not fields:
        return ""
    return f"; allowed here: {', '.join(sorted(fields))}"
