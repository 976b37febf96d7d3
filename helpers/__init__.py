"""salescast: the package the notebooks import.

Examples
--------
>>> import helpers
>>> with helpers.connect(root="/tmp/salescast-doc") as platform:   # doctest: +SKIP
...     platform.orders.put(orders)
...     platform.flush()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from helpers.config import Settings

if TYPE_CHECKING:
    from helpers.platform import Platform

__all__ = ["Platform", "Settings", "connect"]


def __getattr__(name: str) -> Any:
    """``helpers.Platform`` on first use: the runtime processes import ``helpers`` without
    pandas."""
    if name == "Platform":
        from helpers.platform import Platform

        return Platform
    raise AttributeError(f"module 'helpers' has no attribute {name!r}")


def connect(backend: str | None = None, root: Any = None, **settings: Any) -> Platform:
    """The platform for a backend (``local`` by default), ready to use.

    Settings come from the defaults, then ``SALESCAST_*`` environment variables, then these
    arguments. On ``local`` this process also runs the pipeline's pollers unless
    another process already does (``consume=False`` never runs them). On ``aws`` the
    credentials and region come from boto3's chain and the names from the deployed stack
    (``salescast deploy``); ``consume`` does not apply, the services run themselves.
    """
    consume = settings.pop("consume", True)
    resolved = Settings.from_env(backend=backend, root=root, **settings)
    if resolved.backend == "local":
        from helpers.local.platform import LocalPlatform

        return LocalPlatform(resolved, consume=consume)
    from helpers.aws.platform import AwsPlatform

    return AwsPlatform(resolved)
