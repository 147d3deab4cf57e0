"""Everything of the SDK that does no I/O, shared by the async and the sync client."""
