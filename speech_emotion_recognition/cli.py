"""The commonest command-line mistakes in plain words, checked before Hydra sees the arguments.

Hydra answers a mistyped key with "+inptu=… to append", a bare path with a grammar error and a
forgotten required value with "Missing mandatory value". Each entry point calls
`check_arguments` first, which names the mistake and the fix instead, and exits with status 2.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parent.parent / "conf"


def options(config_name: str) -> set[str]:
    """What `key=value` may name: the entry point's own keys and the groups of its defaults."""
    primary = OmegaConf.to_container(OmegaConf.load(CONF / f"{config_name}.yaml"))
    groups = {
        key.split()[-1].lstrip("/")  # "optional x", "override /x"
        for entry in primary.get("defaults", [])
        if isinstance(entry, dict)
        for key in entry
    }
    return (set(primary) - {"defaults"}) | groups | {"hydra"}


def mistakes(config_name: str, args: Sequence[str]) -> list[str]:
    """One sentence per mistake in `args` (Hydra's own flags are left to Hydra)."""
    known = options(config_name)
    primary = OmegaConf.to_container(OmegaConf.load(CONF / f"{config_name}.yaml"))
    found, given = [], set()
    for arg in args:
        if arg.startswith("-"):
            continue
        if "=" not in arg:
            hint = f" To predict it: input={arg}" if "input" in known else ""
            found.append(f"'{arg}' is not key=value: options are given as key=value.{hint}")
            continue
        key = arg.split("=", 1)[0]
        name = key.lstrip("+~").split(".")[0].split("/")[0]
        given.add(name)
        if key.startswith(("+", "~")) or name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1)
        found.append(
            f"there is no option '{name}'"
            + (f"; did you mean {close[0]}=…?" if close else ".")
            + f" Options: {', '.join(sorted(known))} (conf/{config_name}.yaml)."
        )
    for key, value in primary.items():
        if value == "???" and key not in given:
            found.append(f"{key}=… is required (conf/{config_name}.yaml).")
    return found


def check_arguments(config_name: str, argv: Sequence[str] | None = None) -> None:
    """Exit with status 2 and the mistakes in words, if the command line has any."""
    found = mistakes(config_name, sys.argv[1:] if argv is None else argv)
    if found:
        script = Path(sys.argv[0]).name
        print("\n".join(f"{script}: {sentence}" for sentence in found), file=sys.stderr)
        sys.exit(2)
