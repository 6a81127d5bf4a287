"""Tests of the deployment files: the Helm chart, the systemd unit, the Dockerfile."""
