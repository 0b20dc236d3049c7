"""``python -m kfadmin.emulator --host 127.0.0.1 --port 8765 [--seed demo]``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from .chatter import Chatter
from .core import Emulator
from .demo import DEMO_APPID, DEMO_SECRET, DEMO_WECHAT_ID
from .server import make_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kfadmin.emulator", description="Offline WeChat kf API emulator"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--seed",
        choices=["demo", "none"],
        default="none",
        help="demo: add the demo official account",
    )
    parser.add_argument(
        "--demo-seed", type=int, default=1, help="random seed for the demo data (default 1)"
    )
    parser.add_argument(
        "--token-overlap", type=float, default=300, help="seconds an old classic token stays valid"
    )
    parser.add_argument(
        "--invite-lifetime",
        type=float,
        default=7 * 86400,
        help="seconds a binding invitation lasts",
    )
    parser.add_argument(
        "--chatter",
        type=float,
        default=0,
        metavar="SECONDS",
        help="demo: about every SECONDS a customer writes (mostly in a session, which WeChat "
        "does not push; now and then a newcomer joins the queue); 0 (default) keeps quiet",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    emulator = Emulator(token_overlap=args.token_overlap, invite_lifetime=args.invite_lifetime)
    server = make_server(emulator, args.host, args.port)
    if args.seed == "demo":
        emulator.seed_demo(seed=args.demo_seed)
    out = logging.getLogger("kfadmin.emulator")
    if args.chatter > 0:
        if args.seed != "demo":
            parser.error("--chatter needs --seed demo")
        Chatter(emulator, appid=DEMO_APPID, every=args.chatter).start()
        out.info("customers of the demo account write about every %.0f s", args.chatter)
    out.info("WeChat kf emulator listening on %s", server.base_url)
    if args.seed == "demo":
        out.info(
            "demo official account: appid=%s secret=%s wechat_id=%s",
            DEMO_APPID,
            DEMO_SECRET,
            DEMO_WECHAT_ID,
        )

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() blocks until serve_forever returns, so call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        out.info("WeChat kf emulator stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
