"""Attacks on Roost, kept as tests so each refusal stays in place (grouped by area)."""
