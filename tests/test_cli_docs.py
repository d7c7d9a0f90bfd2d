"""docs/cli.md against the parser: every option it names exists, and every plain default it states is the parser's."""

import argparse
import re
from pathlib import Path

import pytest

from svimg.cli._parser import build_parser

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
LITERAL = re.compile(r"^(`[^`\s]+`|-?[0-9][0-9.e+-]*|[0-9]+:[0-9]+|none|off)$")  # a default, not prose


def _commands() -> dict:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {"": parser, **sub.choices}


def _options(p) -> dict:
    return {s: a for a in p._actions for s in a.option_strings}


def _documented_defaults():
    """(command, option, documented default) for every table row of a ``## `svimg COMMAND` `` section."""
    command, rows = None, []
    for line in DOC.read_text().splitlines():
        heading = re.match(r"## `svimg ([a-z-]+)`", line)
        if line.startswith("## "):
            command = heading.group(1) if heading else None
        elif command and line.startswith("| `--"):
            first, default = [c.strip() for c in line.split(" | ")[:2]]
            options = re.findall(r"`(--[a-z-]+)", first)
            values = [v.strip() for v in default.split(",")] if len(options) > 1 else [default]
            rows += [(command, o, v) for o, v in zip(options, values) if LITERAL.match(v)]
    return rows


def _matches(action, text: str) -> bool:
    text = text.strip("`")
    default = action.default
    if default is None or default is False:
        plain = "none" if default is None else "off"
    elif isinstance(default, tuple):
        plain = ":".join("" if v is None else str(v) for v in default)
    else:
        plain = str(default)
    try:
        if float(text) == float(plain):
            return True
    except ValueError:
        pass
    said = re.search(rf"\bdefault:? {re.escape(text)}(\b|$)", action.help or "")  # a default the help states
    return text == plain or said is not None


DEFAULTS = _documented_defaults()


def test_the_doc_states_defaults():
    assert len(DEFAULTS) >= 20 and {c for c, _, _ in DEFAULTS} >= {"restore", "demo", "train-prior"}


@pytest.mark.parametrize("command, option, documented", DEFAULTS, ids=[f"{c} {o}" for c, o, _ in DEFAULTS])
def test_documented_default_is_the_parsers(command, option, documented):
    options = _options(_commands()[command])
    assert option in options, f"docs/cli.md lists {option} under svimg {command}, which has no such option"
    assert _matches(options[option], documented), \
        f"docs/cli.md: svimg {command} {option} defaults to {documented}, the parser to {options[option].default!r}"


def test_every_option_the_doc_names_exists():
    known = {s for p in _commands().values() for s in _options(p)}
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", DOC.read_text()))
    assert named - known == set()


def test_comma_separated_specs_and_quiet_after_the_command():
    parser = build_parser()
    args = parser.parse_args(["restore", "in.zarr", "out.zarr", "--op", "temporal:uniform:7,spatial:sr:2", "-q"])
    assert args.op == ["temporal:uniform:7", "spatial:sr:2"] and args.quiet is True
    assert parser.parse_args(["-q", "restore", "in.zarr", "out.zarr"]).quiet is True
    assert parser.parse_args(["restore", "in.zarr", "out.zarr"]).quiet is False


def test_frames_means_the_same_everywhere():
    commands = _commands()
    for name in ("degrade", "restore", "evaluate", "demo"):
        action = _options(commands[name])["--frames"]
        assert action.metavar == "N|START:STOP", name
        assert action.type("4") == 4 and action.type("2:6") == (2, 6), name


def test_help_texts_speak_of_their_own_command():
    seed = _options(_commands()["restore"])["--seed"].help
    assert "demo" not in seed
    assert "noise" in _options(_commands()["demo"])["--seed"].help
