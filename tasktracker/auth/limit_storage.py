"""The rate limiter's Redis storage: a moving-window hit and its window in one round trip.

Flask-Limiter counts a request with ``acquire_entry`` (one Lua script on Redis), then reads the
same window again with ``get_moving_window`` (a second script) to write the ``X-RateLimit-*``
headers. Both run on every request of every user; the second asks Redis what the first had
in hand. This storage is limits' own ``RedisStorage`` whose hit script also returns the window
it leaves behind, remembered for the rest of the request (``flask.g``) and answered from there
when Flask-Limiter asks for the same key, limit and expiry. Anything else, and any call outside
a request, goes to Redis as before. Configured as ``tasktracker+redis://…`` (or
``tasktracker+rediss://``) in ``RATELIMIT_STORAGE_URI``.
"""

from __future__ import annotations

import time
from typing import Any

from flask import g, has_app_context
from limits.storage import RedisStorage

SCHEME_PREFIX = "tasktracker+"

# limits' acquire_moving_window.lua, then its moving_window.lua's binary search for the oldest
# entry still in the window, on the list the hit left. The timestamp goes back as a string:
# Redis turns a Lua number into an integer.
ACQUIRE_WITH_WINDOW = """
local timestamp = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local expiry = tonumber(ARGV[3])
local amount = tonumber(ARGV[4])
local start = timestamp - expiry
local acquired = 0

if amount <= limit then
    local entry = redis.call('lindex', KEYS[1], limit - amount)
    if not (entry and tonumber(entry) >= start) then
        local entries = {}
        for i = 1, amount do
            entries[i] = timestamp
        end
        for i = 1, #entries, 5000 do
            redis.call('lpush', KEYS[1], unpack(entries, i, math.min(i + 4999, #entries)))
        end
        redis.call('ltrim', KEYS[1], 0, limit - 1)
        redis.call('expire', KEYS[1], expiry)
        acquired = 1
    end
end

local low, high, found = 0, limit - 1, nil
while low <= high do
    local mid = math.floor((low + high) / 2)
    local value = tonumber(redis.call('lindex', KEYS[1], mid))
    if value and value >= start then
        found = mid
        low = mid + 1
    else
        high = mid - 1
    end
end

if found then
    return {acquired, tostring(tonumber(redis.call('lindex', KEYS[1], found))), found + 1}
end
return {acquired, tostring(timestamp), 0}
"""


class OneTripRedisStorage(RedisStorage):
    """limits' Redis storage whose moving-window hit also answers the window read after it."""

    STORAGE_SCHEME = [SCHEME_PREFIX + "redis", SCHEME_PREFIX + "rediss"]

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri.removeprefix(SCHEME_PREFIX), **options)

    def initialize_storage(self, _uri: str) -> None:
        super().initialize_storage(_uri)
        self.lua_acquire_with_window = self.get_connection().register_script(
            ACQUIRE_WITH_WINDOW.encode()
        )

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        redis_key = self.prefixed_key(key)
        acquired, oldest, count = self.lua_acquire_with_window(
            [redis_key], [time.time(), limit, expiry, amount]
        )
        if has_app_context():
            windows = g.setdefault("_rate_limit_windows", {})
            windows[(redis_key, limit, expiry)] = (float(oldest), int(count))
        return bool(acquired)

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        if has_app_context():
            window = g.get("_rate_limit_windows", {}).get((self.prefixed_key(key), limit, expiry))
            if window is not None:
                return window
        return super().get_moving_window(key, limit, expiry)
