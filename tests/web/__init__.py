"""Tests of the status page: its API in-process, the page in a real browser."""
