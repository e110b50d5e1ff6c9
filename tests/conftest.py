"""Shared fixtures: small data written by the tests themselves, so no test needs ../shared."""
