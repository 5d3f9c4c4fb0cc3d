"""The benchmark's yardstick: a Flask endpoint that only answers 202, under the ingress's server settings."""
from __future__ import annotations

import argparse

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from erp_sync.ingress.serve import door_listener, serve
from erp_sync.shared.settings import load_settings

WEBHOOK_PATH = "/webhooks/erp"


def create_bare_app() -> Flask:
    """One POST route that neither reads nor checks the body."""
    app = Flask(__name__)

    @app.post(WEBHOOK_PATH)
    def accept() -> ResponseReturnValue:
        return jsonify({"status": "accepted"}), 202

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    settings = load_settings()
    serve(settings, create_bare_app, door_listener(settings, parser.parse_args().port))


if __name__ == "__main__":
    main()
