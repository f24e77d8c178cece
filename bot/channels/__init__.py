"""The channel adapters: thin plugs between a provider's library and the transport-neutral handlers."""

import sys

# httpx (python-telegram-bot's HTTP client) imports its command-line client whenever click, rich and pygments are
# installed, as they are for our own CLI: 5.5 MB in every service process for a tool none of them runs. httpx
# falls back by itself when that module cannot be imported (its `main` then only says what is missing).
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)
