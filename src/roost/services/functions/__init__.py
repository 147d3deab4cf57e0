"""Functions: Python code deployed by name, run in the function runtime's sandboxed workers.

- `catalog`: deploy (every deploy a new version), versions, rollback, list, get, delete;
- `invocations`: execute (sync or async), stream (generator handlers), results, the list
  of invocations, and the `fn.<name>` RPC methods;
- `queued`: async invocations, recorded PENDING and queued on the queue backend, run at least
  once; `runner`: the loop that takes them from the queue (in servers and `roost worker`);
- `runs`: one run, from the caller to the runtime's events to the invocation's record;
- `specs`: a version as the runs need it, cached, and its code unpacked for the runtime;
- `bundles` (the code's zip), `schemas` (params JSON Schema, checked at deploy through
  `schema_graph` and against params by `schema_validator`), `tokens` (runtime tokens),
  `runtime` (what the service needs of `roost.functions.pool`).

Handlers never run in the server process: the runtime's workers run them.
"""
