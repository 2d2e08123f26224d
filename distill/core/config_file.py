"""``--config FILE``: a previous run's ``config.json``, or a JSON/YAML file of the same keys, read back as the
starting point of a command; the flags given on the command line override it (``given_flags``)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Iterable

from distill.core.errors import ConfigError, first_line


def load_config_file(path: str, valid: Iterable[str]) -> dict[str, Any]:
    """The mapping in ``path`` (.json, .yaml/.yml), every key one of ``valid``; anything else is one line."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(f"--config '{path}' cannot be read ({exc.strerror or exc}); pass a run's config.json or a "
                          "JSON/YAML file of the same keys") from None
    try:
        if file.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ModuleNotFoundError:
                raise ConfigError("--config: a YAML file needs PyYAML (pip install 'edgedistill[train]'); or pass "
                                  "the same keys as JSON") from None
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ConfigError:
        raise
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
        raise ConfigError(f"--config '{path}' is not valid "
                          f"{'YAML' if file.suffix.lower() in ('.yaml', '.yml') else 'JSON'} "
                          f"({first_line(exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config '{path}' holds a {type(data).__name__}, not a mapping of option names to values")
    valid = set(valid)
    unknown = sorted(set(data) - valid)
    if unknown:
        raise ConfigError(f"--config '{path}': unknown key{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(repr(k) for k in unknown)}; the keys are those of a run's config.json "
                          f"(e.g. {', '.join(sorted(valid)[:6])}, ...)")
    return data


def given_flags(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The destinations of the options written in ``argv`` (abbreviations resolved as argparse does): what a
    ``--config`` file must not override."""
    by_option = {opt: a.dest for a in parser._actions for opt in a.option_strings}
    given = set()
    for token in argv:
        if token == "--":
            break
        if not token.startswith("-") or token == "-":
            continue
        name = token.split("=", 1)[0]
        if name in by_option:
            given.add(by_option[name])
        elif name.startswith("--"):
            matches = {dest for opt, dest in by_option.items() if opt.startswith(name)}
            if len(matches) == 1:
                given |= matches
    return given
