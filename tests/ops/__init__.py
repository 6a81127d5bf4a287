"""Tests of scheduler/ops/."""
