"""The WSGI entry points for gunicorn.

- `ivr.wsgi:callers`: what Twilio calls (/voice, /media) and the probes; `ivr serve`'s caller pool.
- `ivr.wsgi:staff`: the console, the API, /metrics and the probes; `ivr serve`'s staff pool.
- `ivr.wsgi:app`: everything in one app, for running gunicorn by hand (no bulkhead between callers and staff).

Each is built on first use, so a pool imports and builds only its own part.
"""
import gc

from ivr.app import create_app
from ivr.store.private_files import private_umask

private_umask()  # gunicorn run by hand: the files the workers create (database, spool, keys) are 0600 too

_PARTS = {"app": "all", "callers": "callers", "staff": "staff"}


def __getattr__(name: str):
    if name not in _PARTS:
        raise AttributeError(f"module 'ivr.wsgi' has no attribute {name!r}")
    app = globals()[name] = create_app(part=_PARTS[name])
    # Everything loaded so far (Flask, SQLAlchemy, twilio, the rules...) lives as long as the worker. Moved
    # out of the collector's sight, it is no longer walked by every full collection, a pause that a webhook
    # waited out (docs/performance.md). With preload_app the master does this once, before it forks.
    gc.collect()
    gc.freeze()
    return app
