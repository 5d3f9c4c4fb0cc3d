"""The operator console on the API process: its own credentials, off when unset, and a replay only from its own page."""
from __future__ import annotations

import base64
import re

import pytest
from sqlalchemy import insert

from erp_sync.ingress import console_data
from erp_sync.ingress.console_auth import ConsoleCredentials
from erp_sync.ingress.storefront import create_api_app
from erp_sync.shared.dead_letters import DeadLetters
from erp_sync.shared.models import ReconciliationRun
from tests.support.amqp import drain
from tests.support.settings import API_TOKEN
from tests.support.storefront import closed_after
from tests.support.parking import park

PASSWORD = "console-password-1"
TOKEN = "console-token-of-length"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def console(settings_factory, broker):
    settings = settings_factory(console_user="ops", console_password=PASSWORD, console_token=TOKEN)
    for app in closed_after(create_api_app(settings)):
        yield app.test_client()


def test_the_console_is_off_without_credentials(api):
    assert api.get("/console").status_code == 404


@pytest.mark.parametrize("headers", [{}, basic("ops", "wrong-password"), basic("someone", PASSWORD),
                                     {"Authorization": f"Bearer {API_TOKEN}"}, {"Authorization": "Basic !!"}])
def test_the_console_asks_for_its_own_credentials(console, headers):
    answer = console.get("/console", headers=headers)

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic ")


@pytest.mark.parametrize("headers", [basic("ops", PASSWORD), {"Authorization": f"Bearer {TOKEN}"}])
def test_the_console_opens_with_its_credentials_and_they_open_nothing_else(console, headers):
    page = console.get("/console", headers=headers)

    assert page.status_code == 200 and "erp-sync console" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert console.get("/api/v1/inventory/SKU-1", headers=headers).status_code == 401


def form_token(console) -> str:
    page = console.get("/console/parked", headers=basic("ops", PASSWORD)).text
    return re.search(r'name="form_token" value="([0-9a-f]+)"', page)[1]


@pytest.mark.parametrize("form, origin", [({}, None), ({"form_token": "0" * 64}, None),
                                          ({"form_token": "GOOD"}, "https://evil.example")])
def test_a_replay_from_anywhere_but_the_console_is_refused(console, broker, form, origin):
    park(broker, "inventory", "evt_1")
    form = {"id": "evt_1", "queue": "inventory"} | {k: form_token(console) if v == "GOOD" else v for k, v in form.items()}
    headers = basic("ops", PASSWORD) | ({"Origin": origin} if origin else {})

    answer = console.post("/console/replay", data=form, headers=headers)

    assert answer.status_code == 403
    assert [m.message_id for m in DeadLetters(broker).parked()] == ["evt_1"]


def test_a_replay_from_the_console_puts_the_message_back(console, broker):
    park(broker, "inventory", "evt_1")
    park(broker, "inventory", "evt_2")

    answer = console.post("/console/replay", data={"id": "evt_2", "queue": "inventory", "form_token": form_token(console)},
                          headers=basic("ops", PASSWORD) | {"Origin": "http://localhost"})

    assert answer.status_code == 303 and answer.headers["Location"].endswith("/console?replayed=evt_2")
    assert [m.properties.message_id for m in drain(broker, "erp-sync.inventory")] == ["evt_2"]
    assert [m.message_id for m in DeadLetters(broker).parked()] == ["evt_1"]


def test_a_replay_of_an_id_parked_twice_says_how_many_went_back(console, broker):
    # given two parked messages under one id (the ERP sent the event twice, both parked)
    park(broker, "inventory", "DUP-1")
    park(broker, "inventory", "DUP-1")

    # when its row's Replay is pressed
    answer = console.post("/console/replay", data={"id": "DUP-1", "queue": "inventory", "form_token": form_token(console)},
                          headers=basic("ops", PASSWORD) | {"Origin": "http://localhost"})
    page = console.get(answer.headers["Location"], headers=basic("ops", PASSWORD)).text

    # then the page says both went back, not as if one had
    assert answer.headers["Location"].endswith("/console?replayed=DUP-1&copies=2")
    assert "Replayed DUP-1 (2 parked messages under it): back on its work queue." in page
    assert len(drain(broker, "erp-sync.inventory")) == 2


def test_a_console_with_a_token_alone_asks_for_the_token_not_a_password(settings_factory, broker):
    settings = settings_factory(console_token=TOKEN)
    for app in closed_after(create_api_app(settings)):
        answer = app.test_client().get("/console")

    # a browser's password prompt could never let anyone in
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"].startswith("Bearer ")


@pytest.mark.parametrize("path", ["/console/", "/console/nope"])
def test_a_path_under_the_console_that_is_no_page_is_a_404_not_the_storefronts_401(console, path):
    answer = console.get(path, headers=basic("ops", PASSWORD))

    assert answer.status_code == 404


def test_a_wrong_console_login_is_logged_with_its_address(console, caplog):
    with caplog.at_level("WARNING", logger="erp_sync.ingress.console"):
        console.get("/console", headers=basic("ops", "wrong-password"))

    assert "console: credentials refused from 127.0.0.1" in caplog.text


def test_the_api_says_at_start_whether_the_console_is_on_and_how_one_logs_in(settings_factory, broker, caplog):
    with caplog.at_level("INFO", logger="erp_sync.ingress.storefront"):
        for _ in closed_after(create_api_app(settings_factory())):
            pass
        for _ in closed_after(create_api_app(settings_factory(console_token=TOKEN))):
            pass

    assert "operator console at /console: off (set CONSOLE_USER and CONSOLE_PASSWORD, or CONSOLE_TOKEN)" in caplog.text
    assert "operator console at /console: on, with a Bearer token" in caplog.text


def test_a_replay_of_a_message_no_longer_parked_says_so(console, broker):
    # given a page listing a message that another operator has replayed since
    park(broker, "inventory", "evt_gone")
    token = form_token(console)
    DeadLetters(broker).replay({"evt_gone"}, "inventory")

    # when this operator replays it too
    answer = console.post("/console/replay", data={"id": "evt_gone", "queue": "inventory", "form_token": token},
                          headers=basic("ops", PASSWORD) | {"Origin": "http://localhost"})
    page = console.get(answer.headers["Location"], headers=basic("ops", PASSWORD)).text

    # then the page says nothing was replayed, and why, rather than nothing at all
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/console?not_parked=evt_gone")
    assert "Nothing replayed: evt_gone is not parked (any more) on that queue" in page


def test_a_replay_while_rabbitmq_is_out_of_reach_is_a_503_and_the_message_stays_parked(settings_factory, broker):
    park(broker, "inventory", "evt_1")
    # the console's API process pointed at a port where no broker listens
    settings = settings_factory(console_user="ops", console_password=PASSWORD, amqp_url="amqp://guest:guest@127.0.0.1:9/%2F")
    for app in closed_after(create_api_app(settings)):
        console = app.test_client()

        # the token of the page as it was served before RabbitMQ went (a page without it lists no replay)
        token = ConsoleCredentials.from_settings(settings).form_token()
        answer = console.post("/console/replay", data={"id": "evt_1", "queue": "inventory", "form_token": token},
                              headers=basic("ops", PASSWORD) | {"Origin": "http://localhost"})

        assert (answer.status_code, answer.headers["Retry-After"]) == (503, str(settings.unavailable_retry_after_s))
        assert answer.get_json()["error"].startswith("not replayed, the message stays parked: ")
    assert [m.message_id for m in DeadLetters(broker).parked()] == ["evt_1"]


def test_the_page_says_what_it_cannot_know_and_how_to_decide_a_held_run(settings_factory, committed_session,
                                                                          db_engine):
    # given a held sweep and a failed one, and a console whose RabbitMQ cannot be read
    with db_engine.begin() as connection:
        held = connection.execute(insert(ReconciliationRun).values(
            status="held", held_reason="would change 6 of 100 SKUs").returning(ReconciliationRun.id)).scalar_one()
        connection.execute(insert(ReconciliationRun).values(
            status="failed", error="snapshot: a SKU appears twice (Key (sku)=(S-2) already exists.)"))
    settings = settings_factory(console_user="ops", console_password=PASSWORD, amqp_url="amqp://guest:guest@127.0.0.1:9/%2F")
    for app in closed_after(create_api_app(settings)):
        # when the operator opens it
        page = app.test_client().get("/console", headers=basic("ops", PASSWORD)).text

    # then the parked messages are unknown, not none; each decision is a command of its own (one line
    # pasted whole must not approve); and the failed sweep says why
    assert "nothing parked" not in page and "not known: RabbitMQ cannot be read" in page
    assert f'<span class="reason" data-figure="decide">erp-sync reconcile --approve {held}</span>' in page
    assert f"erp-sync reconcile --reject {held}</span>" in page and f"--approve {held} |" not in page
    assert "snapshot: a SKU appears twice" in page


def test_a_held_run_a_later_sweep_overtook_is_offered_only_its_rejection(settings_factory, committed_session,
                                                                           db_engine):
    # given a held sweep, then a later one that succeeded (it compared a newer snapshot), then a
    # failed one that did not
    with db_engine.begin() as connection:
        held, later, _ = (connection.execute(insert(ReconciliationRun).values(**values).returning(ReconciliationRun.id))
                          .scalar_one() for values in ({"status": "held", "held_reason": "would change 6 of 100 SKUs"},
                                                       {"status": "succeeded"}, {"status": "failed", "error": "x"}))
    settings = settings_factory(console_user="ops", console_password=PASSWORD, amqp_url="amqp://guest:guest@127.0.0.1:9/%2F")
    for app in closed_after(create_api_app(settings)):
        # when the operator opens the console
        page = app.test_client().get("/console", headers=basic("ops", PASSWORD)).text

    # then the held run offers its rejection alone, saying which run overtook it (`--approve` refuses it)
    assert f"--approve {held}" not in page
    assert f"overtaken by run {later}, which compared a newer snapshot" in page
    assert f"erp-sync reconcile --reject {held}</span>" in page


def test_with_the_database_down_the_page_still_shows_what_rabbitmq_tells(settings_factory, broker):
    # given a parked message, and a console whose database does not answer
    park(broker, "inventory", "evt_while_db_down")
    settings = settings_factory(console_user="ops", console_password=PASSWORD,
                                database_url="postgresql+psycopg://postgres@127.0.0.1:9/erp_sync")
    for app in closed_after(create_api_app(settings)):
        # when the operator opens it
        answer = app.test_client().get("/console", headers=basic("ops", PASSWORD))

    # then the page comes (not a bare 503), with the parked count, and says what it cannot know
    assert answer.status_code == 200
    assert "1 parked</span>:" in answer.text
    assert "PostgreSQL cannot be read: orders, webhooks and sweeps are not shown" in answer.text
    assert "no orders yet" not in answer.text and "no sweep yet" not in answer.text


def test_the_reloading_page_counts_parked_messages_without_looking_at_them(console, broker):
    # given a parked message (RabbitMQ counts each look at it as a delivery: on 4.0 to 4.2, against
    # the parking queue's delivery limit of 20)
    park(broker, "inventory", "evt_1")

    # when the page that reloads itself every 30 s is served ten times
    for _ in range(10):
        page = console.get("/console", headers=basic("ops", PASSWORD)).text

    # then it counts the message and links to the list, which it does not show
    assert "1 parked</span>:" in page and 'href="/console/parked"' in page and 'data-parked="evt_1"' not in page
    # and the message was never looked at: its next look is its first delivery
    [parked] = drain(broker, "erp-sync.inventory.parked")
    assert (parked.properties.headers or {}).get("x-delivery-count", 0) == 0


def test_the_parked_page_lists_each_message_with_a_replay_and_does_not_reload_itself(console, broker):
    park(broker, "inventory", "evt_1")

    page = console.get("/console/parked", headers=basic("ops", PASSWORD)).text

    assert 'data-parked="evt_1"' in page and 'name="form_token"' in page
    assert 'http-equiv="refresh"' not in page


def test_the_parked_page_counts_every_queue_and_lists_one_on_request(console, broker):
    # given messages parked on two queues
    park(broker, "inventory", "evt_1")
    park(broker, "catalog", "evt_2")
    park(broker, "catalog", "evt_3")

    everything = console.get("/console/parked", headers=basic("ops", PASSWORD)).text
    catalog = console.get("/console/parked?queue=catalog", headers=basic("ops", PASSWORD)).text
    unknown = console.get("/console/parked?queue=nope", headers=basic("ops", PASSWORD))

    # then each page says how many each queue holds, with a link to each; one queue's lists only its own
    assert "3 parked:" in everything and 'href="/console/parked?queue=catalog">catalog</a> 2' in everything
    assert all(f'data-parked="{m}"' in everything for m in ("evt_1", "evt_2", "evt_3"))
    assert 'data-parked="evt_1"' not in catalog and 'data-parked="evt_2"' in catalog
    as_rabbitmq_names_it = console.get("/console/parked?queue=erp-sync.catalog.parked",
                                       headers=basic("ops", PASSWORD)).text
    assert "; catalog 2" in as_rabbitmq_names_it and 'href="/console/parked?queue=catalog"' not in as_rabbitmq_names_it
    assert (unknown.status_code, unknown.get_json()["error"]) == (
        400, "no queue 'nope'; the queues are catalog, inventory, media, orders, orders-push")


def test_while_a_dlq_command_reads_the_parked_messages_the_console_says_so(console, broker):
    park(broker, "inventory", "evt_1")
    token = form_token(console)

    with DeadLetters(broker).reading() as command_reading:
        next(command_reading)
        page = console.get("/console/parked", headers=basic("ops", PASSWORD)).text
        replay = console.post("/console/replay", data={"id": "evt_1", "queue": "inventory", "form_token": token},
                              headers=basic("ops", PASSWORD) | {"Origin": "http://localhost"})

    # then neither calls the message gone: the page says why it shows none, the replay asks to retry
    assert "not known: another `erp-sync dlq` command or the console is reading the parked messages" in page
    assert "nothing parked" not in page and 'data-figure="parked-queues"' not in page
    assert replay.status_code == 503 and "Retry-After" in replay.headers
    assert replay.get_json()["error"].startswith("not replayed, the message stays parked: another `erp-sync dlq`")
    assert [m.message_id for m in DeadLetters(broker).parked()] == ["evt_1"]


def test_while_the_parked_messages_are_read_the_reloading_page_says_their_count_is_not_known(console, broker):
    # given two parked messages, taken by a `dlq list` under way (RabbitMQ counts none of them ready)
    park(broker, "inventory", "evt_1")
    park(broker, "inventory", "evt_2")
    with DeadLetters(broker).reading() as command_reading:
        next(command_reading)

        # when the page that reloads itself is served meanwhile
        page = console.get("/console", headers=basic("ops", PASSWORD)).text

    # then it says the parked messages are being read, where it said "nothing parked" and 0
    inventory = page.split('data-queue="inventory"')[1].split("</tr>")[0]
    assert 'data-figure="parked">being read</td>' in inventory and "nothing parked" not in page
    assert "not known: the parked messages are being read" in page
    # and once the read has ended, it counts them again
    assert "2 parked</span>:" in console.get("/console", headers=basic("ops", PASSWORD)).text


def test_the_parked_page_says_when_it_lists_only_the_first(console, broker, monkeypatch):
    # given a page that lists two, and two parked messages, then a third on another queue
    monkeypatch.setattr(console_data, "PARKED_SHOWN", 2)
    for n in range(2):
        park(broker, "inventory", f"evt_{n}")

    def page(path: str = "/console/parked") -> str:
        return console.get(path, headers=basic("ops", PASSWORD)).text

    all_shown = page()
    park(broker, "catalog", "evt_2")
    cut, one_queue = page(), page("/console/parked?queue=inventory")

    # then it says so when more are parked than it lists, and not when it lists them all
    assert all_shown.count("data-parked=") == 2 and 'data-figure="parked-cut"' not in all_shown
    assert cut.count("data-parked=") == 2 and "3 parked:" in cut
    assert '<span data-figure="parked-cut">Showing the first 2.</span>' in cut
    assert one_queue.count("data-parked=") == 2 and 'data-figure="parked-cut"' not in one_queue
    park(broker, "inventory", "evt_3")
    assert "Showing the first 2 of inventory." in page("/console/parked?queue=inventory")
