"""Tests of scheduler/cli/."""
