"""`esdiff ablate`: not implemented yet."""

from __future__ import annotations

from esdiff_cli.common import fail


def command() -> None:
    """Not implemented yet: this subcommand arrives with a later release."""
    raise fail("esdiff ablate is not implemented yet", 3)
