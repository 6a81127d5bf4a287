"""Tests of scheduler/daemon/."""
