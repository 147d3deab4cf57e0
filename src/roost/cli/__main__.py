"""`python -m roost.cli` is the `roost` command."""

from roost.cli.main import main

main()
