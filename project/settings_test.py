"""Settings for the test suite: the real settings with test-only defaults.

DATABASE_URL and REDIS_URL still come from the environment, so the same suite runs
on SQLite with the in-memory layer and again on PostgreSQL and Redis.
"""

from __future__ import annotations

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-used-anywhere-else")
os.environ.setdefault("PARLEY_DEMO", "true")
os.environ.setdefault("DEMO_TOKENS_PER_SECOND", "400")
os.environ.setdefault("REDIS_PREFIX", "parley-test")

from project.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tests must never leak a real key into a request.
MINIMAX_API_KEY = CLOUDFLARE_API_TOKEN = DASHSCOPE_API_KEY = CLOUDSWAY_API_KEY = ""
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
# Connections opened by database_sync_to_async threads must not outlive a test.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
REPLY_SUPERVISOR = False  # tests that need the orphan reaper start it themselves
AUTO_TITLE = False  # tests of titles turn it on; it is another upstream request
# Each test runs on a loop of its own, which would leave kept connections open behind
# it: in-process tests open a connection per reply (tests of keep-alive turn it on and
# close the pool; daphne in live tests keeps connections as in production).
UPSTREAM_KEEPALIVE_SECONDS = 0.0
# Throttling counters live in the cache: keep them per test process (tests clear it).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
