"""The async compatibility facades (hand-written; `_sync` is generated from them)."""
