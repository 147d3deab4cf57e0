"""Compatibility entry points: code written for another platform's SDK runs on Roost with its
import line changed and nothing else.

- `roost.compat.dominus`: CB Dominus (`from roost.compat.dominus import dominus`)
- `roost.compat.synap`: Synap (`from roost.compat.synap import AsyncSynapClient`)
- `roost.compat.dotdo`: DotDo (`from roost.compat.dotdo import DotDo`)
- `roost.compat.taruvi`: Taruvi (`from roost.compat.taruvi import Client`)

Each is a thin facade over the native SDK (`roost.AsyncClient`, `roost.Client` and their
namespaces): it renames, reshapes arguments and results, and maps errors, and implements
nothing twice. Their error names are aliases or thin subclasses within `roost.errors`' one
tree, so `except RoostError` catches them all. What still differs, and why, is written in
`docs/coming-from-<seed>.md`.

Layout, as in `roost.client`: `_core/` holds what does no I/O (a seed's settings and
environment variables, its error names, conversions of results), `_async/` the facades, and
`_sync/` is generated from `_async/` by `scripts/unasync.py`.
"""
