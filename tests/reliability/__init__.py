"""The reliability suite: a served archive under load, faults, bad input and attack (pytest -m soak).

A package, so that its conftest.py does not shadow tests/conftest.py as the module `conftest`.
"""
