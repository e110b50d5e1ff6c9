"""What several tests share and that is not a fixture: tiny artifacts and data the tests write
themselves, fake HTTP servers, a real TorchServe for integration tests, bench result rows.

Tests import these modules (`from tests.helpers import fake_http`); conftest.py holds the
fixtures only, and pytest loads it itself.
"""
