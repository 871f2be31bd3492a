"""Thin Azure Functions blueprints: HTTP in -> core call -> HTTP out, one module per endpoint."""
