"""Tests of the bank side and the host's bank link (issue 4)."""
