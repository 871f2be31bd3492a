"""Command-line tools for ES administrators (run from a workstation, not deployed)."""
