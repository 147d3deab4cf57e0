"""The function runtime: users' Python handlers run in warm, sandboxed worker processes.

`WorkerPool` (pool.py) is the whole interface the service uses: `Job` in, a stream of `Item`,
`Log` and one `Finished` or `Failed` out (protocol.py). The rest is how: worker.py runs inside
the sandbox, sandbox.py and confine.py build the walls, relay.py is the sandbox's one door to
the API. Server side only (the `server` extra); the SDK never imports it.
"""
