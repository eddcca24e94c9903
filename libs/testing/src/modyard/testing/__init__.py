"""Test support shared by every package's tests: real infrastructure, isolated per test session.

Loaded as a pytest plugin by the repository's root ``conftest.py``.
"""
