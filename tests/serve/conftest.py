"""Fixtures of the service tests; they and the helpers live in serve_support.py (a module name
that no other test folder uses, so test files can import the helpers in a full run)."""

from serve_support import fake_client, redis_url, start_server, world, world_dir  # noqa: F401
