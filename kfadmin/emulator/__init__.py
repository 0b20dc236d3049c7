"""An offline emulator of WeChat's customer-service (kf) API.

An independent re-implementation of WeChat's side (it deliberately shares no code
with ``kfadmin.wechat``), stdlib-only apart from ``cryptography`` for callback
encryption, and free of Django. Run it as ``python -m kfadmin.emulator`` or embed
it::

    from kfadmin.emulator import Emulator
    from kfadmin.emulator.server import serve_in_thread

    emu = Emulator()
    emu.seed_demo(seed=1)
    handle = serve_in_thread(emu)   # handle.base_url, handle.port, handle.shutdown()

See docs/emulator.md.
"""

from .core import ApiOutcome, Call, Emulator
from .demo import (
    DEMO_APPID,
    DEMO_CALLBACK_TOKEN,
    DEMO_ENCODING_AES_KEY,
    DEMO_NAME,
    DEMO_ORIGINAL_ID,
    DEMO_SECRET,
    DEMO_WECHAT_ID,
)
from .errors import ApiError, ControlError

__all__ = [
    "DEMO_APPID",
    "DEMO_CALLBACK_TOKEN",
    "DEMO_ENCODING_AES_KEY",
    "DEMO_NAME",
    "DEMO_ORIGINAL_ID",
    "DEMO_SECRET",
    "DEMO_WECHAT_ID",
    "ApiError",
    "ApiOutcome",
    "Call",
    "ControlError",
    "Emulator",
]
