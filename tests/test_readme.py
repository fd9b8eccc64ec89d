"""README.md cannot drift from the code: its configuration reference lists every config key with
its default, its CLI block names every command and every option ``paybridge … --help`` shows,
and the config.example.yaml it calls complete sets every key."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
import yaml
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from bridge.cli import main
from bridge.config import Config

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
_REQUIRED = object()


def _section(heading: str) -> str:
    start = README.index(f"\n## {heading}\n")
    return README[start : README.find("\n## ", start + 1)]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The config model a field holds (directly, optionally or as list items), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if (model := _model_of(arg)) is not None:
            return model
    return None


def _config_keys(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every leaf key of the config as the README writes it (``endpoints[].url``) with its
    default (``_REQUIRED`` when it has none)."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = _model_of(field.annotation)
        if sub is not None:
            listed = "[]" if get_origin(field.annotation) is list else ""
            yield from _config_keys(sub, f"{key}{listed}.")
            continue
        if field.default is not PydanticUndefined:
            yield key, field.default
        elif field.default_factory is not None:
            yield key, field.default_factory()  # type: ignore[call-arg]
        else:
            yield key, _REQUIRED


def _documented_defaults() -> dict[str, Any]:
    """Key → default as the README's configuration table states it; a cell such as
    ``server.host` / `server.port``` names several keys with ``/``-separated defaults."""
    out: dict[str, Any] = {}
    for line in _section("Configuration reference").splitlines():
        if not line.startswith("| `"):
            continue
        keys_cell, default_cell = (c.strip() for c in line.strip("|").split("|")[:2])
        keys = [k.strip().strip("`") for k in keys_cell.split(" / ")]
        defaults = [d.strip() for d in default_cell.split(" / ")]
        if len(defaults) != len(keys):
            defaults = defaults[:1] * len(keys)
        parent = keys[0].rpartition(".")[0]
        for key, default in zip(keys, defaults, strict=True):
            out[key if "." in key else f"{parent}.{key}"] = _parse_default(default)
    return out


def _parse_default(cell: str) -> Any:
    if cell.startswith("required"):
        return _REQUIRED
    if cell in ("none", "off"):
        return None
    return yaml.safe_load(cell.strip("`"))


def test_config_reference_lists_every_key_with_its_default() -> None:
    documented = _documented_defaults()
    for key, default in _config_keys(Config):
        assert key in documented, f"README configuration reference misses {key}"
        stated = documented[key]
        if stated is _REQUIRED:
            assert default is _REQUIRED or default is None, f"{key} is not required"
            continue
        assert stated == default, f"{key}: README says {stated!r}, the code {default!r}"
    assert set(documented) <= {k for k, _ in _config_keys(Config)}, "README lists unknown keys"


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return capsys.readouterr().out


def _usage(help_text: str) -> str:
    return help_text.split("\n\n", 1)[0]


def _choices(usage: str) -> list[str]:
    """The sub-commands in a usage line (``{list,show}``, not an option's ``--x {a,b}``)."""
    found = re.search(r"(?<!\w )\{([a-z,-]+)\}", usage)
    return found.group(1).split(",") if found else []


def _cli_entry(command: str) -> str:
    """The README CLI block's lines for ``paybridge command`` (with continuation lines)."""
    block = _section("CLI")
    start = block.index("```\n") + 4
    lines = block[start : block.index("\n```", start)].splitlines()
    entry, inside = [], False
    for line in lines:
        if line.startswith("paybridge "):
            inside = line.split()[1] == command
        if inside:
            entry.append(line)
    return "\n".join(entry)


def test_cli_block_names_every_command_and_option(capsys: pytest.CaptureFixture[str]) -> None:
    commands = _choices(_usage(_help(capsys)))
    assert commands
    for command in commands:
        entry = _cli_entry(command)
        assert entry, f"README CLI block misses paybridge {command}"
        usage = _usage(_help(capsys, command))
        leaves = [[command, sub] for sub in _choices(usage)] or [[command]]
        for leaf in leaves:
            assert leaf[-1] in entry, f"README CLI block misses paybridge {' '.join(leaf)}"
            if command == "endpoints":  # one line for all of them; docs/operations.md has each
                continue
            options = set(re.findall(r"\[?(--[a-z-]+)", _usage(_help(capsys, *leaf))))
            missing = options - {"--help", "--config"} - set(re.findall(r"--[a-z-]+", entry))
            assert not missing, f"paybridge {' '.join(leaf)}: README misses {sorted(missing)}"


def _present(node: Any, parts: list[str]) -> bool:
    """Whether the YAML ``node`` sets the key ``parts`` (``endpoints[]``: in some list item)."""
    if not parts:
        return True
    head, rest = parts[0], parts[1:]
    if head.endswith("[]"):
        items = node.get(head[:-2]) if isinstance(node, dict) else None
        return isinstance(items, list) and any(_present(item, rest) for item in items)
    return isinstance(node, dict) and head in node and _present(node[head], rest)


def test_config_example_sets_or_shows_every_key() -> None:
    """``config.example.yaml`` is the complete file the README promises: every key is set, or
    (a key that is off by default) shown commented out."""
    text = (Path(__file__).resolve().parents[1] / "config.example.yaml").read_text("utf-8")
    example = yaml.safe_load(text)
    for key, default in _config_keys(Config):
        if _present(example, key.split(".")):
            continue
        leaf = key.rpartition(".")[2]
        assert default is None and f"# {leaf}:" in text, f"config.example.yaml misses {key}"
