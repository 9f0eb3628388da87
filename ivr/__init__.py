"""The breach hotline's core: configuration, storage, rules, the call flow and the admin commands."""


def create_app(config=None):
    """Build the Flask app (see ivr.app.create_app)."""
    from ivr.app import create_app as _create_app

    return _create_app(config)
