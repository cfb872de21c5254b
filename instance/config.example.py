# An example of instance/config.py, the local settings file (git-ignored).
#
#     cp instance/config.example.py instance/config.py
#
# The file is Python: KEY = value lines. Its settings override the defaults in
# alignwork/config.py; the DATABASE_URL environment variable and ALIGNWORK_<KEY> variables
# override it in turn (e.g. ALIGNWORK_CACHE_TYPE=NullCache). ALIGNWORK_ENV (development,
# production, testing) is read from the environment only. Every setting is described in
# docs/deploy.md; a setting that cannot work is refused at start-up in one line naming it.
#
# gunicorn re-reads this file on a reload (HUP); the code is not reloaded.

# -- Signing key ------------------------------------------------------------------------------
# Signs the API tokens: changing it ends every token issued. Required in production, at least
# 32 bytes; make one with:
#     python3 -c 'import secrets; print(secrets.token_urlsafe(48))'
# Without it, development uses a random key per process (tokens die with the process).
# SECRET_KEY = "paste the generated key here"

# -- Database ---------------------------------------------------------------------------------
# Here the URL is SQLALCHEMY_DATABASE_URI; in the environment, DATABASE_URL (which wins).
# postgresql:// URLs are used through psycopg 3. Without either, SQLite in the instance folder.
SQLALCHEMY_DATABASE_URI = "postgresql://alignwork@127.0.0.1:5432/alignwork"

# PostgreSQL ends a transaction of the app's connections left idle this long, in seconds.
# Behind PgBouncer set 0, and set idle_in_transaction_session_timeout on the server instead.
# DATABASE_IDLE_TRANSACTION_SECONDS = 30

# -- Cache ------------------------------------------------------------------------------------
# NullCache (off), SimpleCache (per process: one gunicorn worker with threads), or a shared
# cache: RedisCache, RedisSentinelCache, RedisClusterCache.
CACHE_TYPE = "RedisCache"

# RedisCache: one URL, redis://[:password@]host:port/db (or rediss://, unix://) ...
CACHE_REDIS_URL = "redis://127.0.0.1:6379/0"
# ... or its parts instead of the URL:
# CACHE_REDIS_HOST = "127.0.0.1"
# CACHE_REDIS_PORT = 6379
# CACHE_REDIS_DB = 0
# CACHE_REDIS_PASSWORD = "..."

# RedisSentinelCache: the sentinels and the name they monitor the master under (no URL).
# CACHE_TYPE = "RedisSentinelCache"
# CACHE_REDIS_SENTINELS = [["10.0.0.5", 26379], ["10.0.0.6", 26379], ["10.0.0.7", 26379]]
# CACHE_REDIS_SENTINEL_MASTER = "alignwork"
# CACHE_REDIS_PASSWORD = "..."            # the master's, if it has one
# CACHE_REDIS_SENTINEL_PASSWORD = "..."   # the sentinels', if they have one

# RedisClusterCache: nodes to discover the cluster from (or CACHE_REDIS_URL naming one node).
# CACHE_TYPE = "RedisClusterCache"
# CACHE_REDIS_CLUSTER = "10.0.0.5:7000,10.0.0.6:7000,10.0.0.7:7000"

# More redis-py client arguments (not the timeouts, retries or decode_responses: the app sets
# those itself).
# CACHE_OPTIONS = {"health_check_interval": 30}

# Every key this app writes starts with this (no { or }); give each deployment sharing a Redis
# its own.
# CACHE_KEY_PREFIX = "alignwork:"

# The safety net under invalidation, in seconds: how long an entry is served before it is
# recomputed anyway (default 900 on a shared cache, 30 on SimpleCache).
# CACHE_DEFAULT_TIMEOUT = 900
# How long past that an entry is kept to answer (STALE) while the database is down.
# CACHE_STALE_SECONDS = 3600
# A Redis call slower than this counts as failed; then Redis is left alone this long.
# CACHE_REDIS_SOCKET_TIMEOUT = 0.5
# CACHE_BACKOFF_SECONDS = 5
# Most entries a SimpleCache keeps per process.
# CACHE_THRESHOLD = 10000

# -- Stats and the change listener ------------------------------------------------------------
# Longest a request waits for another computing the same stats.
# STATS_LOCK_WAIT_SECONDS = 5
# Before a zone's midnight, polls compute tomorrow's entries in this window (0: off, else
# 120 to 3600 seconds).
# STATS_PRECOMPUTE_SECONDS = 600
# "workers": every gunicorn worker runs the change listener; "off": `flask stats listen` runs
# it apart (needs a shared cache).
# CHANGE_LISTENER = "workers"
# Seconds between the listener's looks at the database (above 0, at most 1).
# CHANGE_LISTENER_INTERVAL = 0.5

# -- HTTP -------------------------------------------------------------------------------------
# Largest request body in bytes (413 beyond).
# MAX_CONTENT_LENGTH = 65536
# Browser origins allowed to call /api/v1 from their own pages; ["*"] for any.
# CORS_ORIGINS = ["https://dashboard.example.com"]
