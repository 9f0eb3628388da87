"""The WSGI entry point for gunicorn: `gunicorn ivr.wsgi:app`."""
import gc

from ivr.app import create_app

app = create_app()

# Everything loaded so far (Flask, SQLAlchemy, twilio, the rules...) lives as long as the worker. Moved out
# of the collector's sight, it is no longer walked by every full collection, a pause that a webhook waited
# out (docs/performance.md).
gc.collect()
gc.freeze()
