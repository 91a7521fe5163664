"""One declared mapping between a training config dataclass and its command-line flags.

Each :class:`Flag` names a config field (or a pair of fields for a two-value flag), the flag, its help and how
it parses. The same tuple builds the argparse options (:func:`add_flags`), reads a config back from parsed
arguments (:func:`config_values`) and writes a config as an argument list (:func:`config_argv`), which the
background job runs and the model card prints. A field that has no flag cannot be set from the command line.
"""

from __future__ import annotations

import argparse
import numbers
from dataclasses import dataclass


#: The largest seed a run takes: every random generator a run seeds accepts it (numpy's stop at 2**32 - 1).
MAX_SEED = 2**31 - 1
SEED_RULE = f"seed must be a whole number from 0 to {MAX_SEED}"
#: The most films a run or an evaluation passes through the network at once.
MAX_BATCH = 1024


def valid_seed(seed) -> bool:
    return isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED


@dataclass(frozen=True)
class Flag:
    """``field``: the config attribute, or a tuple of two for ``nargs=2`` (e.g. a min and a max).
    ``kind``: "value" (``--flag V``), "bool" (``--flag`` / ``--no-flag``) or "list" (``--flag V V ...``).
    ``shared``: the option also serves another task's parser (train.py --task denoise), so argparse keeps no
    default of its own (None) and each config fills in its own."""

    field: str | tuple[str, str]
    flag: str
    help: str
    type: type = str
    choices: tuple | None = None
    kind: str = "value"
    shared: bool = False

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def fields(self) -> tuple[str, ...]:
        return self.field if isinstance(self.field, tuple) else (self.field,)

    def value(self, config):
        values = tuple(getattr(config, f) for f in self.fields)
        return values if len(values) > 1 else values[0]


def add_flags(parser: argparse.ArgumentParser, flags: tuple[Flag, ...], defaults) -> None:
    """An argparse option for every flag, defaulting to ``defaults`` (a config instance)."""
    for f in flags:
        default = None if f.shared else f.value(defaults)
        help_text = f.help + (f" (default {default_text(f.value(defaults))})" if f.shared else "")
        if f.kind == "bool":
            parser.add_argument(f.flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif f.kind == "list":
            parser.add_argument(f.flag, type=f.type, nargs="+", default=None if default is None else list(default),
                                help=help_text)
        elif len(f.fields) == 2:
            parser.add_argument(f.flag, type=f.type, nargs=2, default=default, metavar=("MIN", "MAX"), help=help_text)
        else:
            parser.add_argument(f.flag, type=f.type, choices=f.choices, default=default, help=help_text)


def default_text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def config_values(flags: tuple[Flag, ...], args: argparse.Namespace, defaults) -> dict:
    """{field: value} read from parsed ``args``; a flag not given (None, or absent from ``args``) keeps the
    value of ``defaults``."""
    out = {}
    for f in flags:
        value = getattr(args, f.dest, None)
        if value is None:
            value = f.value(defaults)
        if f.kind == "list":
            value = tuple(value)
        if len(f.fields) == 2:
            out.update(zip(f.fields, value))
        else:
            out[f.field] = value
    return out


def config_argv(config, flags: tuple[Flag, ...], defaults, always: tuple[str, ...] = ()) -> list[str]:
    """The argument list that sets ``config``: every flag whose value is set and either differs from
    ``defaults`` or whose (first) field is in ``always``."""
    argv = []
    for f in flags:
        value = f.value(config)
        if value is None or (f.fields[0] not in always and value == f.value(defaults)):
            continue
        if f.kind == "bool":
            argv.append(f.flag if value else "--no-" + f.flag[2:])
        elif f.kind == "list" or len(f.fields) == 2:
            argv += [f.flag, *map(str, value)]
        else:
            argv += [f.flag, str(value)]
    return argv


def help_for(flags: tuple[Flag, ...], field: str) -> str:
    """The declared help of ``field``'s flag (for a form's tooltip), first letter capitalised."""
    text = next(f.help for f in flags if field in f.fields)
    return text[:1].upper() + text[1:] + "."
