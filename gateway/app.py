"""``create_app(config)``: the Flask application, configured from data."""

from __future__ import annotations

from flask import Flask

from gateway.config import Config


def create_app(config: Config, *, ports=None) -> Flask:
    """Build the WSGI app for ``config``; ``ports`` replaces the default stores in tests."""
    from gateway import views
    from gateway.runtime import Runtime

    app = Flask("gateway")
    app.config["MAX_CONTENT_LENGTH"] = None  # limits are enforced by the SOAP layer
    app.extensions["gateway"] = Runtime.start(config, ports=ports)
    app.register_blueprint(views.blueprint)
    return app
