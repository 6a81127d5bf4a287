"""Tests of scheduler/store/."""
