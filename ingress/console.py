"""The operator console at /console on `erp-sync api`: the night's view, server-rendered, behind its own credentials."""
from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from erp_sync.ingress.console_auth import ConsoleCredentials
from erp_sync.ingress.console_chart import drift_chart
from erp_sync.ingress.console_data import overview, parked_page
from erp_sync.ingress.errors import ApiError
from erp_sync.ingress.extensions import engine, settings
from erp_sync.shared.dead_letters import DeadLetters, ReplayCutShort, work_queues
from erp_sync.shared.errors import BrokerUnavailable, ConfigurationError, ParkedBeingRead, PublishRejected

logger = logging.getLogger(__name__)

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates")


def _credentials() -> ConsoleCredentials:
    credentials = ConsoleCredentials.from_settings(settings())
    if credentials is None:
        abort(404)
    return credentials


@bp.before_request
def _require_console_credentials() -> None:
    credentials = _credentials()
    given = request.headers.get("Authorization")
    if credentials.admit(given):
        return
    if given is not None:  # a browser's first request carries none: only a wrong one is worth a line
        logger.warning("console: credentials refused from %s", request.remote_addr)
    # A token alone: a browser's password prompt could never succeed.
    challenge = ('Basic realm="erp-sync console", charset="UTF-8"' if credentials.password is not None
                 else 'Bearer realm="erp-sync console"')
    raise ApiError(401, "the console needs its own credentials (CONSOLE_USER/CONSOLE_PASSWORD or CONSOLE_TOKEN)",
                   headers={"WWW-Authenticate": challenge})


@bp.after_request
def _not_cached_nor_framed(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
    return response


@bp.get("")
def index() -> ResponseReturnValue:
    config = settings()
    page = overview(engine(), config.amqp_url)
    return render_template(
        "console/index.html", page=page, chart=drift_chart(page.runs, config.reconcile_drift_alert_share),
        alert_share=config.reconcile_drift_alert_share, replayed=request.args.get("replayed"),
        copies=request.args.get("copies", type=int), not_parked=request.args.get("not_parked"))


@bp.get("/parked")
def parked() -> ResponseReturnValue:
    try:
        page = parked_page(settings().amqp_url, request.args.get("queue") or None)
    except ConfigurationError as exc:
        raise ApiError(400, str(exc)) from exc
    return render_template("console/parked.html", page=page, form_token=_credentials().form_token(),
                           read_at=datetime.now(UTC))


@bp.post("/replay")
def replay() -> ResponseReturnValue:
    if not _credentials().form_is_genuine(request.form.get("form_token"), request.headers.get("Origin"), request.host):
        raise ApiError(403, "this form did not come from the console's own page")
    message_id, queue = request.form.get("id", ""), request.form.get("queue", "")
    try:
        work_queues(queue)
    except ConfigurationError as exc:
        raise ApiError(400, str(exc)) from exc
    try:
        replayed = DeadLetters(settings().amqp_url).replay({message_id}, queue)
    except (BrokerUnavailable, PublishRejected, ParkedBeingRead, ConfigurationError) as exc:
        # Nothing was lost: what could not go back to its work queue stays parked. Of copies of one
        # id, those before a refusal went back.
        went_back = len(exc.settled) if isinstance(exc, ReplayCutShort) else 0
        what = (f"{went_back} of its copies replayed, the others stay parked" if went_back
                else "not replayed, the message stays parked")
        raise ApiError(503, f"{what}: {exc}", headers={"Retry-After": str(settings().unavailable_retry_after_s)}) from exc
    logger.info("console: replayed %d parked message(s) %s from %s", len(replayed), message_id, queue)
    # After a POST, a redirect: reloading the page must not replay again. To the overview, which
    # reads no parked message: the replay looked at every one of its queue already.
    named = message_id or "(no id)"
    if not replayed:
        return redirect(url_for("console.index", not_parked=named), code=303)
    # Every parked copy of the id (or every message without one) went back: the page says how many.
    if len(replayed) > 1:
        return redirect(url_for("console.index", replayed=named, copies=str(len(replayed))), code=303)
    return redirect(url_for("console.index", replayed=named), code=303)
