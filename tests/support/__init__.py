"""Helpers for the tests of every tier; nothing here is a test.

Test modules and conftest.py files import from here, never from each other. A fixture several
tiers need is written once in a `*_fixtures` module here and offered by the conftest.py of each
tier that may use it, so a tier reaches only the fixtures its conftest offers: tests/unit offers
none that needs a service.
"""
