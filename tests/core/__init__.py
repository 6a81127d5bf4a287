"""Tests of scheduler/core/."""
