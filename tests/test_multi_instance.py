"""Several instances behind a real load balancer: the suite's PostgreSQL, two console servers
(`streamlit run serve.py`, SWITCHBOARD_WORKER=off, the same keyring and cookie secret), two
`switchboard worker` processes, and nginx running deploy/nginx.conf in front of the consoles,
driven in headless Chromium through nginx's address.

Which instance served a request is read from nginx's access log (the deployed log format names
the upstream). Without nginx, PostgreSQL or Chromium these tests are skipped locally and fail
under CI=true; .ci/run installs all three.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Page, expect
from pydantic import SecretStr
from sqlalchemy import Engine, func, update
from sqlmodel import col, select

from lib.catalogue.products import PRODUCT_KEYS, TOKEN
from lib.kernel.words import count
from lib.services import connections
from lib.services.accounts import users
from lib.services.accounts.sessions import COOKIE_NAME
from lib.services.alerts import channels
from lib.services.connections import ConnectionInput
from lib.simulator import App, Scenario, SimulatorServer
from lib.store import db
from lib.store.db import read_session, write_session
from lib.store.keyring import check_keyring
from lib.store.models import (
    AlertDelivery,
    AlertOutbox,
    AuditEvent,
    Check,
    CurrentStatus,
    DueCheck,
    utcnow,
)
from lib.store.vault import Keyring, Vault, new_key
from lib.web.cookie import HOST_COOKIE
from tests.browser.conftest import browser_type_launch_args, keyed, wait_for_app  # noqa: F401 (a fixture)
from tests.fixtures.alerts import WEBHOOK_SECRET, Receiver, receiving
from tests.fixtures.nginx import Nginx, require_nginx, start_nginx
from tests.fixtures.notify import LOCAL
from tests.fixtures.people import ADMIN
from tests.fixtures.postgres import fresh_database
from tests.fixtures.prober import control
from tests.fixtures.server import PASSWORD, ROOT, Server, end_group, free_port, start_server
from tests.fixtures.waiting import eventually

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.slow]

CONNECTIONS = 12
SETTINGS = {
    "analytics_region": "us",
    "storage_region": "us-east",
    "qm_region": "us-east",
    "chat_region": "us",
    "tenant_id": "fleet-tenant",
    "pbx": "fleet-pbx",
}


def fleet_scenario(n: int) -> Scenario:
    return Scenario(
        apps=[
            App(
                client_id=f"fleet-client-{i:03d}",
                client_secret=f"fleet-secret-{i:03d}",
                products=PRODUCT_KEYS,
                tenants=["fleet-tenant"],
                pbx_names=["fleet-pbx"],
                analytics_region="us",
                storage_regions=["us-east"],
                qm_region="us-east",
                chat_region="us",
            )
            for i in range(n)
        ]
    )


@dataclass
class Cluster:
    nginx: Nginx
    sim: SimulatorServer
    engine: Engine
    env: dict[str, str]  # what every instance and worker is given
    ports: tuple[int, int]
    receiver: Receiver  # the alert channel's webhook receiver
    consoles: dict[int, Server] = field(default_factory=dict)  # running ones, by port
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.nginx.url

    def start(self, port: int) -> Server:
        if port not in self.consoles:
            self.consoles[port] = start_server(self.env, self.sim.url, port=port)
        return self.consoles[port]

    def stop(self, port: int) -> None:
        self.consoles.pop(port).stop()

    def kill(self, port: int) -> None:
        """SIGKILL: no shutdown, no last word to the database or the browser."""
        server = self.consoles.pop(port)
        server.process.kill()
        server.process.wait(10)
        server.stop()  # its folder

    def port_of(self, upstream: str) -> int:
        return int(upstream.rsplit(":", 1)[1])

    def serving(self, path: str) -> int:
        """The instance that served the last page load of ``path``."""
        served = self.nginx.served_by(path)
        assert served, f"nginx logged no GET {path}"
        return self.port_of(served[-1])

    def other(self, port: int) -> int:
        return next(p for p in self.ports if p != port)

    def start_worker(self) -> None:
        self.workers.append(
            subprocess.Popen(
                [sys.executable, "-m", "lib", "worker", "--tick", "1s", "--batch", "5"],
                env=self.env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )

    def close(self) -> None:
        for worker in self.workers:
            end_group(worker, 30)
        for port in list(self.consoles):
            self.stop(port)
        self.nginx.stop()


def keys_text(keyring: Keyring) -> str:
    return ",".join(f"{kid}:{base64.b64encode(key).decode()}" for kid, key in keyring.keys.items())


@pytest.fixture(scope="module")
def cluster(postgres_server: str) -> Iterator[Cluster]:
    binary = require_nginx()
    sim = SimulatorServer(fleet_scenario(CONNECTIONS)).start()
    keyring = Keyring("k1", {"k1": new_key()})
    with fresh_database(postgres_server) as database_url, receiving() as receiver:
        engine = db.make_engine(database_url)
        db.upgrade(engine)  # once, as the README's upgrade order says, before any instance starts
        vault = Vault(keyring)
        check_keyring(engine, vault)
        users.add(engine, "ada", SecretStr(PASSWORD), "admin", actor=ADMIN, own_password=True)
        for i, app in enumerate(sim.scenario.apps):
            connections.create(
                engine,
                vault,
                ConnectionInput(
                    name=f"Fleet {i:03d}",
                    client_id=app.client_id,
                    client_secret=SecretStr(app.client_secret),
                    **SETTINGS,
                ),
                actor=ADMIN,
            )  # type: ignore[arg-type]
        channels.add(
            engine,
            vault,
            "Ops hook",
            "webhook",
            SecretStr(receiver.url + "/hook"),
            actor=ADMIN,
            secret=SecretStr(WEBHOOK_SECRET),
            allow=LOCAL,
        )
        ports = (free_port(), free_port())
        nginx = start_nginx(binary, ports)
        env = {
            "SWITCHBOARD_DATABASE_URL": database_url,
            "SWITCHBOARD_KEYS": keys_text(keyring),
            "SWITCHBOARD_8X8_BASE_URL": sim.url,
            "SWITCHBOARD_WORKER": "off",
            "SWITCHBOARD_TRUSTED_PROXIES": "127.0.0.1",
            "SWITCHBOARD_PUBLIC_URL": nginx.url,
            "STREAMLIT_SERVER_COOKIE_SECRET": new_key().hex(),
            "SWITCHBOARD_ALERT_ALLOW": "127.0.0.1",
        }
        started = Cluster(nginx, sim, engine, env, ports, receiver)
        try:
            for port in ports:
                started.start(port)
            for _ in range(2):
                started.start_worker()
            yield started
        finally:
            started.close()
            engine.dispose()
            sim.stop()


@pytest.fixture
def both(cluster: Cluster) -> Cluster:
    """Both console instances running, as each test starts."""
    for port in cluster.ports:
        cluster.start(port)
    control(cluster.sim, "PUT", "knobs", {"latency_ms": 0})
    return cluster


def sign_in(page: Page, cluster: Cluster, path: str = "connections") -> int:
    """Sign in as ada through nginx; the port of the instance serving this browser's session."""
    page.goto(f"{cluster.url}/{path}")
    expect(page.get_by_test_id("sign-in-form")).to_be_visible()
    page.locator("#username").fill("ada")
    page.locator("#password").fill(PASSWORD)
    page.get_by_test_id("sign-in-submit").click()
    wait_for_app(page)
    expect(page.get_by_role("heading", name="Connections")).to_be_visible()
    return cluster.serving(f"/{path}")


def test_a_session_outlives_its_instance_and_the_other_one_acts_on_it(both: Cluster, page: Page) -> None:
    first = sign_in(page, both)
    both.stop(first)
    page.reload()
    wait_for_app(page)
    expect(page.get_by_role("heading", name="Connections")).to_be_visible()  # no sign-in form: still signed in
    assert both.serving("/connections") == both.other(first)
    keyed(page, "conn_test_all").locator("button").click()  # an action over the other instance's socket
    wait_for_app(page)
    expect(page.get_by_text(f"Tested {CONNECTIONS * 5} products of all connections:")).to_be_visible()


def test_signing_out_on_one_instance_ends_the_session_on_the_other(both: Cluster, page: Page) -> None:
    serving = sign_in(page, both)
    cookie = next(c["value"] for c in page.context.cookies() if c["name"] in (HOST_COOKIE, COOKIE_NAME))
    # The same browser's sign-out, sent straight to the other instance (nginx would route it
    # to the serving one), with the Origin a page behind nginx sends.
    other = f"http://127.0.0.1:{both.other(serving)}"
    with httpx.Client(base_url=other, headers={"Origin": both.url}, cookies={"switchboard_session": cookie}) as client:
        signed_out = client.post("/account/sign-out")
    assert signed_out.status_code == 303 and "signed_out=1" in signed_out.headers["location"]
    keyed(page, "conn_test_all").locator("button").click()  # the next action, on the instance still serving
    wait_for_app(page)
    expect(page.get_by_text("Sign in to continue")).to_be_visible()
    page.reload()  # and a page load, wherever nginx sends it, goes to the sign-in page
    expect(page.get_by_test_id("sign-in-form")).to_be_visible()


# --- scheduled checks and console tests together -------------------------------------------------


def due_rows(engine: Engine) -> list[DueCheck]:
    with read_session(engine) as session:
        return list(session.exec(select(DueCheck)).all())


def all_checked(engine: Engine) -> bool:
    """No slot is due now or held by a worker."""
    return not [r for r in due_rows(engine) if r.claimed_by or r.due_at <= utcnow()]


def duplicates(engine: Engine) -> list[tuple[object, ...]]:
    """(connection, product, run) stored more than once: a slot or a console test checked twice."""
    with read_session(engine) as session:
        return list(
            session.exec(
                select(Check.connection_id, Check.product, Check.run_id, func.count())
                .where(Check.product != TOKEN)
                .group_by(Check.connection_id, Check.product, Check.run_id)
                .having(func.count() > 1)
            ).all()
        )


def checks_since(engine: Engine, since: datetime, triggered_by: str) -> Counter[tuple[object, str]]:
    with read_session(engine) as session:
        rows = session.exec(
            select(Check.connection_id, Check.product).where(
                col(Check.started_at) >= since, Check.triggered_by == triggered_by, Check.product != TOKEN
            )
        ).all()
    return Counter((c, p) for c, p in rows)


def outbox(engine: Engine) -> list[AlertOutbox]:
    with read_session(engine) as session:
        return list(session.exec(select(AlertOutbox)).all())


def scheduled_ticks_since(engine: Engine, since: datetime) -> list[str]:
    """The target of each scheduled tick's audit row ("N connections (scheduled, worker …)")."""
    with read_session(engine) as session:
        return list(
            session.exec(
                select(AuditEvent.target).where(
                    AuditEvent.actor == "schedule", AuditEvent.action == "check.run", col(AuditEvent.at) >= since
                )
            ).all()
        )


def test_console_tests_during_scheduled_ticks_check_each_slot_once(both: Cluster, page: Page) -> None:
    """Every slot falls due at once while a person runs Test all: each (connection, product)
    is checked once by the schedule (by one of the two workers) and once by the console, and
    no (connection, product, run) is stored twice. What the workers raise from these checks
    (the alert outbox and its deliveries) is settled in the same window, after the last wait:
    with Contact Center Chat failing throughout, its two failures in a row raise one check.failed
    per connection, delivered once to the channel's receiver though two workers deliver."""
    slots = CONNECTIONS * len(PRODUCT_KEYS)
    eventually(
        lambda: len(due_rows(both.engine)) == slots, timeout_s=60, what="the workers' first ticks to make the due rows"
    )
    # ... and checked what fell due by itself: a slot checked just before the window would be
    # due again below, and checked twice in it (once per slot, rightly; a CI run saw it).
    eventually(lambda: all_checked(both.engine), timeout_s=60, what="every slot that fell due to be checked")
    sign_in(page, both)
    control(both.sim, "PUT", "knobs", {"latency_ms": 150})  # ticks long enough to overlap the console's run
    control(both.sim, "POST", "faults", {"route": "cc_chat", "status": 404})
    received_before = len(both.receiver.received)
    since = utcnow() - timedelta(seconds=1)
    with write_session(both.engine) as session:  # every slot's time has come
        session.exec(update(DueCheck).values(due_at=utcnow() - timedelta(seconds=1)))  # type: ignore[call-overload]
    keyed(page, "conn_test_all").locator("button").click()
    wait_for_app(page)
    expect(page.get_by_text(f"Tested {slots} products of all connections:")).to_be_visible()
    eventually(lambda: all_checked(both.engine), timeout_s=60, what="the workers to check every slot")
    every = {(c.id, p): 1 for c in connections.list_connections(both.engine) for p in PRODUCT_KEYS}
    assert checks_since(both.engine, since, "schedule") == every  # each slot once, by one worker
    assert checks_since(both.engine, since, "ada") == every  # the console's run, once
    assert duplicates(both.engine) == []
    workers = {target.split(", worker ")[1].split(":")[1] for target in scheduled_ticks_since(both.engine, since)}
    assert len(workers) == 2  # both worker processes took part (their pids)
    eventually(
        lambda: outbox(both.engine) and all(row.status == "delivered" for row in outbox(both.engine)),
        timeout_s=60,
        what="every alert in the outbox to be delivered",
    )
    control(both.sim, "DELETE", "faults")
    failed = [r for r in both.receiver.received[received_before:] if r.kind == "check.failed"]
    assert sorted(r.body["connection"] for r in failed) == sorted(
        c.name for c in connections.list_connections(both.engine)
    ) and {r.body["product"] for r in failed} == {"cc_chat"}  # one per connection
    ids = [r.headers["webhook-id"] for r in both.receiver.received]
    assert len(ids) == len(set(ids))  # no event reached the receiver twice
    with read_session(both.engine) as session:
        delivered = Counter(session.exec(select(AlertDelivery.event_id).where(AlertDelivery.outcome == "delivered")))
    assert set(delivered.values()) == {1} and len(delivered) == len(ids)  # one logged success per event


# --- an instance killed in the middle of a run -------------------------------------------------


def test_an_instance_killed_during_test_all_keeps_what_finished_and_the_console_says_so(
    both: Cluster, page: Page
) -> None:
    # The session is made on an instance of our choosing, the other one started after: nginx's
    # log says which instance served a page, not which holds its socket, and the two could
    # differ (a CI run once killed the page's instance while the run went on in the other).
    serving = both.ports[0]
    both.stop(both.other(serving))
    assert sign_in(page, both) == serving
    both.start(both.other(serving))
    control(both.sim, "PUT", "knobs", {"latency_ms": 1500})
    since = utcnow()
    keyed(page, "conn_test_all").locator("button").click()
    eventually(lambda: sum(checks_since(both.engine, since, "ada").values()), what="a first batch to be stored")
    both.kill(serving)
    stored = checks_since(both.engine, since, "ada")
    assert 0 < sum(stored.values()) < CONNECTIONS * 5  # killed mid-run
    wait_for_app(page)  # the browser reconnected through nginx, to the other instance
    said = page.get_by_text("was interrupted: the server running it stopped")
    expect(said).to_be_visible(timeout=30000)
    expect(said).to_contain_text(f"{count(sum(stored.values()), 'product')} had been tested")
    with read_session(both.engine) as session:
        run_checks = session.exec(
            select(Check).where(col(Check.started_at) >= since, Check.triggered_by == "ada", Check.product != TOKEN)
        ).all()
        current = {(s.connection_id, s.product): s for s in session.exec(select(CurrentStatus)).all()}
    assert len({c.run_id for c in run_checks}) == 1 and duplicates(both.engine) == []
    for check in run_checks:  # each stored result came with the current status it sets: nothing half-saved
        assert current[(check.connection_id, check.product)].run_id == check.run_id


# --- the client's address -------------------------------------------------------------------------


def from_address(cluster: Cluster, address: str) -> httpx.Client:
    """A client whose connections to nginx come from ``address`` (another loopback address)."""
    return httpx.Client(
        base_url=cluster.url,
        headers={"Origin": cluster.url},
        timeout=30,
        transport=httpx.HTTPTransport(local_address=address),
    )


def audited_addresses(engine: Engine, since: datetime) -> set[str | None]:
    """The client addresses of the sign-in audit rows (failures, the throttle, successes)."""
    with read_session(engine) as session:
        return set(
            session.exec(
                select(AuditEvent.client_address).where(col(AuditEvent.at) >= since, AuditEvent.action == "sign_in")
            ).all()
        )


def test_nginx_passes_the_real_client_address_and_throttling_keys_on_it(both: Cluster) -> None:
    """The clients come from 127.0.0.3 and 127.0.0.4 and nginx from 127.0.0.1: an instance that
    did not believe nginx's X-Forwarded-For would see 127.0.0.1 for both, and one that believed
    the client's own would see 198.51.100.x."""
    since = utcnow() - timedelta(seconds=1)
    with from_address(both, "127.0.0.3") as guesser:
        answers = [
            guesser.post(
                "/account/sign-in",
                data={"username": f"nobody{i}", "password": "wrong guess 12345"},
                headers={"X-Forwarded-For": f"198.51.100.{i}"},
            ).status_code
            for i in range(users.ADDRESS_FAILURES_ALLOWED + 2)
        ]
    # an address's allowance over all accounts, whatever address it claimed, then the throttle
    assert answers == [401] * users.ADDRESS_FAILURES_ALLOWED + [429] * 2
    with from_address(both, "127.0.0.4") as person:  # somebody else is not held up
        signed_in = person.post("/account/sign-in", data={"username": "ada", "password": PASSWORD})
    assert signed_in.status_code == 303, signed_in.text
    assert audited_addresses(both.engine, since) == {"127.0.0.3", "127.0.0.4"}
