"""The project's tests, one folder per tier (docs/testing.md). A package, so that every test
module and conftest.py has a name of its own (tests.unit.test_scaling is not
tests.reliability.test_scaling) and helpers are imported as `tests.helpers.<module>`."""
