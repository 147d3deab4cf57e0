"""The `roost` command. It runs the server, so it needs the `server` extra: without it, the
command prints one line naming the extra to install rather than a traceback."""

import sys

from roost._extras import require_server_extra

try:
    require_server_extra()
except ModuleNotFoundError as exc:
    raise SystemExit(f"roost: {exc}") from None


def run() -> None:
    """The `roost` command (`main` is the module of its commands). `roost serve` starts with
    the garbage collector paused, before the command's own imports (`roost._startup`; the
    server resumes it once started), and goes through a group of that one command
    (`roost.cli.serve.main`): the other commands' modules are neither imported nor built."""
    if sys.argv[1:2] == ["serve"]:
        from roost._startup import pause_collector

        pause_collector()
        from roost.cli.serve import main as serve_main

        serve_main()
        return
    from roost.cli.main import main

    main()
