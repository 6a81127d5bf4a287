"""The status page at / and its JSON API, for the daemon's HTTP server (ops/httpserver.py)."""
