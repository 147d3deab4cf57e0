"""The async SDK (hand-written; the sync SDK in `_sync` is generated from it)."""
