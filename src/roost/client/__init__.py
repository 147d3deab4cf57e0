"""The Roost SDK: `roost.Client` (sync) and `roost.AsyncClient`."""
