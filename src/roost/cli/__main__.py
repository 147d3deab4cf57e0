"""`python -m roost.cli` is the `roost` command."""

from roost.cli import run

run()
