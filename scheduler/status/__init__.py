"""What `cronlease status` and the web page show: one Redis snapshot, a pure report, actions."""
