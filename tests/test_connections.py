"""The connection service: every validation rule with the message a person sees."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy import update as sql_update
from sqlmodel import select

from lib.catalogue.products import PRODUCTS, SETTINGS
from lib.kernel.errors import NotFoundError, ValidationError
from lib.services import connections
from lib.services.connections import ConnectionInput, client_id_hint
from lib.services.history import status
from lib.store.db import read_session, write_session
from lib.store.models import Connection
from lib.store.vault import Vault
from tests.fixtures.people import ADMIN
from tests.fixtures.storage import Sentinels


def form(**overrides: object) -> ConnectionInput:
    base: dict[str, object] = {
        "name": "Reporting",
        "client_id": "abcdEFGH12345678",
        "client_secret": SecretStr("s3cret-value"),
    }
    base.update(overrides)
    return ConnectionInput(**base)  # type: ignore[arg-type]


def refused(data: ConnectionInput, *, creating: bool = True) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        connections.validate(data, creating=creating)
    return {e.field: e.message for e in info.value.errors}


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"name": ""}, "name", "Enter a name"),
        ({"name": "   "}, "name", "Enter a name"),
        ({"name": "x" * 81}, "name", "at most 80 characters (this one has 81)"),
        ({"name": "two\nlines"}, "name", "invisible characters"),
        ({"client_id": ""}, "client_id", "Paste the Client ID"),
        ({"client_id": "x" * 257}, "client_id", "at most 256 characters"),
        ({"client_id": "abc def"}, "client_id", "Remove spaces"),
        ({"client_id": "abc\x07def"}, "client_id", "invisible characters"),
        ({"client_id": "abc:def"}, "client_id", "cannot contain ':'"),
        ({"client_id": "****ab12"}, "client_id", "masked value"),
        ({"client_secret": SecretStr("")}, "client_secret", "Paste the Client Secret"),
        ({"client_secret": SecretStr("x" * 1025)}, "client_secret", "at most 1024 characters"),
        ({"client_secret": SecretStr("line\nbreak")}, "client_secret", "invisible characters"),
        ({"client_secret": SecretStr("**********")}, "client_secret", "masked value"),
        ({"client_secret": SecretStr("••••••")}, "client_secret", "masked value"),
        ({"analytics_region": "us-west"}, "analytics_region", "Choose one of: us, eu, au, ca"),
        ({"storage_region": "eu"}, "storage_region", "Choose one of: us-west, us-east, uk, ap, ca"),
        ({"qm_region": "mars"}, "qm_region", "Choose one of: us-west, us-east, uk, ap, ca"),
        ({"chat_region": "au"}, "chat_region", "Choose one of: us, eu, ca, ap"),
        ({"tenant_id": "a/b"}, "tenant_id", "letters, digits"),
        ({"tenant_id": "x" * 65}, "tenant_id", "1-64"),
        ({"tenant_id": ".."}, "tenant_id", "not only dots"),  # would step up a level in the probe URL
        ({"tenant_id": "."}, "tenant_id", "not only dots"),
        ({"pbx": "..."}, "pbx", "not only dots"),
        ({"pbx": "pbx name"}, "pbx", "letters, digits"),
        ({"expected_products": ("cc_chat", "voice")}, "expected_products", "Unknown product voice"),
        ({"environment": "e" * 41}, "environment", "at most 40 printable characters"),
    ],
)
def test_each_rule_names_the_field_and_the_fix(overrides: dict, field: str, message: str) -> None:
    assert message in refused(form(**overrides))[field]


def test_all_problems_are_reported_at_once() -> None:
    errors = refused(form(name="", client_id="a:b", client_secret=SecretStr("***"), chat_region="xx"))
    assert set(errors) == {"name", "client_id", "client_secret", "chat_region"}


def test_valid_edge_values_are_accepted() -> None:
    connections.validate(
        form(
            name="n",
            client_id="x",
            client_secret=SecretStr("y"),
            analytics_region="eu",
            storage_region="uk",
            qm_region="ap",
            chat_region="ca",
            tenant_id="tenant_01.a-b",
            pbx="acme-pbx",
            expected_products=("cc_chat", "quality_management"),
        ),
        creating=True,
    )
    connections.validate(form(name="ü" * 80, client_id="x" * 256, client_secret=SecretStr("é" * 1024)), creating=True)


def test_blank_credentials_are_fine_on_update_only() -> None:
    blank = form(client_id="", client_secret=SecretStr(""))
    connections.validate(blank, creating=False)
    assert set(refused(blank)) == {"client_id", "client_secret"}


# --- the settings a ticked product needs (derived from the catalogue) ----------------------

SETTING_VALUES = {key: setting.choices[0] if setting.choices else "value-1" for key, setting in SETTINGS.items()}
NEEDS = [(product.key, key) for product in PRODUCTS.values() for key in product.needs]


@pytest.mark.parametrize(("product", "setting"), NEEDS)
@pytest.mark.parametrize("blank", [None, "  "])
def test_a_ticked_product_is_not_saved_without_a_setting_it_needs(
    product: str, setting: str, blank: str | None
) -> None:
    needed = SETTINGS[setting]
    data = form(expected_products=(product,), **{**SETTING_VALUES, setting: blank})
    for creating in (True, False):
        with pytest.raises(ValidationError) as info:
            connections.validate(data, creating=creating)
        [error] = info.value.errors
        assert (error.field, error.label) == (setting, needed.label)
        assert error.message.startswith(f"{PRODUCTS[product].name} needs it to be tested. ")
        fix = f"Choose one of: {', '.join(needed.choices)}." if needed.choices else "Enter it as 8x8 shows it"
        assert fix in error.message
        assert str(info.value) == f"{needed.label}: {error.message}"  # the label, never the key
    connections.validate(form(expected_products=(product,), **SETTING_VALUES), creating=True)
    connections.validate(form(**{**SETTING_VALUES, setting: None}), creating=True)  # nothing ticked needs it


def test_every_product_that_needs_a_missing_setting_is_named() -> None:
    both = form(expected_products=("cc_realtime_analytics", "cc_historical_analytics"))
    assert refused(both) == {
        "analytics_region": "CC Realtime Analytics and CC Historical Analytics need it "
        "to be tested. Choose one of: us, eu, au, ca."
    }
    everything = set(refused(form(expected_products=tuple(PRODUCTS))))
    assert everything == {key for product in PRODUCTS.values() for key in product.needs}


def test_missing_settings_save_nothing_on_create_or_edit(engine: Engine, vault: Vault) -> None:
    with pytest.raises(ValidationError, match="^Cloud Storage region: Cloud Storage Service needs it"):
        connections.create(engine, vault, form(expected_products=("cloud_storage",)), actor=ADMIN)
    assert connections.count(engine) == 0
    view = connections.create(
        engine, vault, form(expected_products=("cloud_storage",), storage_region="uk"), actor=ADMIN
    )
    with pytest.raises(ValidationError, match="^Cloud Storage region: "):
        connections.update(
            engine,
            vault,
            view.id,
            connections.input_from_view(view, storage_region=None, environment="changed"),
            expected_version=view.version,
            actor=ADMIN,
        )
    with pytest.raises(ValidationError, match="^PBX name: Quality Management needs it"):
        connections.update(
            engine,
            vault,
            view.id,
            connections.input_from_view(
                view, expected_products=("cloud_storage", "quality_management"), qm_region="uk"
            ),
            expected_version=view.version,
            actor=ADMIN,
        )
    after = connections.get(engine, view.id)
    assert (after.settings["storage_region"], after.environment, after.expected_products, after.version) == (
        "uk",
        "",
        ("cloud_storage",),
        1,
    )


def test_a_stored_row_without_a_needed_setting_still_loads_and_is_fixed_by_an_edit(
    engine: Engine, vault: Vault
) -> None:
    view = connections.create(engine, vault, form(), actor=ADMIN)
    with write_session(engine) as session:  # as saved before settings were required
        session.exec(
            sql_update(Connection)
            .where(Connection.id == view.id)  # type: ignore[call-overload]
            .values(expected_products=["cloud_storage"])
        )
    [listed] = connections.list_connections(engine)
    old = connections.get(engine, view.id)
    assert listed == old and old.expected_products == ("cloud_storage",) and old.settings["storage_region"] is None
    with pytest.raises(ValidationError, match="^Cloud Storage region: "):
        connections.update(
            engine,
            vault,
            view.id,
            connections.input_from_view(old, environment="prod"),
            expected_version=old.version,
            actor=ADMIN,
        )
    fixed = connections.update(
        engine,
        vault,
        view.id,
        connections.input_from_view(old, storage_region="us-east"),
        expected_version=old.version,
        actor=ADMIN,
    )
    assert fixed.settings["storage_region"] == "us-east" and fixed.version == 2


def test_names_are_unique_ignoring_case(engine: Engine, vault: Vault) -> None:
    connections.create(engine, vault, form(name="Reporting"), actor=ADMIN)
    with pytest.raises(ValidationError) as info:
        connections.create(engine, vault, form(name="  REPORTING "), actor=ADMIN)
    assert info.value.errors[0].field == "name" and "already has this name" in info.value.errors[0].message
    assert connections.count(engine) == 1


def test_rename_onto_another_name_is_refused_and_nothing_changes(engine: Engine, vault: Vault) -> None:
    connections.create(engine, vault, form(name="One"), actor=ADMIN)
    two = connections.create(engine, vault, form(name="Two", environment="before"), actor=ADMIN)
    with pytest.raises(ValidationError, match="already has this name"):
        connections.update(
            engine,
            vault,
            two.id,
            connections.input_from_view(two, name="one", environment="after"),
            expected_version=two.version,
            actor=ADMIN,
        )
    again = connections.get(engine, two.id)
    assert (again.name, again.environment, again.version) == ("Two", "before", 1)


def _stored(engine: Engine, view_id) -> Connection:  # type: ignore[no-untyped-def]
    with read_session(engine) as session:
        return session.exec(select(Connection).where(Connection.id == view_id)).one()


def test_blank_secret_on_update_keeps_ciphertext_byte_for_byte(
    engine: Engine, vault: Vault, sentinels: Sentinels
) -> None:
    view = connections.create(engine, vault, sentinels.form(), actor=ADMIN)
    before = _stored(engine, view.id)
    after_view = connections.update(
        engine,
        vault,
        view.id,
        connections.input_from_view(view, environment="prod"),
        expected_version=view.version,
        actor=ADMIN,
    )
    after = _stored(engine, view.id)
    assert after.client_secret_enc == before.client_secret_enc
    assert after.client_id_enc == before.client_id_enc
    assert after.secret_set_at == before.secret_set_at
    assert after_view.environment == "prod" and after_view.version == 2


def test_mask_submitted_on_update_is_refused_and_nothing_saved(
    engine: Engine, vault: Vault, sentinels: Sentinels
) -> None:
    view = connections.create(engine, vault, sentinels.form(), actor=ADMIN)
    before = _stored(engine, view.id)
    with pytest.raises(ValidationError, match="masked value"):
        connections.update(
            engine,
            vault,
            view.id,
            connections.input_from_view(view, client_secret=SecretStr("********"), environment="changed"),
            expected_version=1,
            actor=ADMIN,
        )
    after = _stored(engine, view.id)
    assert (after.client_secret_enc, after.environment, after.version) == (before.client_secret_enc, "", 1)


def test_new_secret_is_stored_and_readable(engine: Engine, vault: Vault, sentinels: Sentinels) -> None:
    view = connections.create(engine, vault, sentinels.form(), actor=ADMIN)
    connections.update(
        engine,
        vault,
        view.id,
        connections.input_from_view(view, client_secret=SecretStr("new-one")),
        expected_version=1,
        actor=ADMIN,
    )
    creds = connections.load_credentials(engine, vault, view.id)
    assert creds.client_id == sentinels.client_id and creds.client_secret.get_secret_value() == "new-one"


def test_list_carries_hints_not_secrets(engine: Engine, vault: Vault, sentinels: Sentinels) -> None:
    connections.create(
        engine,
        vault,
        sentinels.form(
            expected_products=("cc_chat", "cloud_storage"), storage_region="uk", chat_region="eu", tenant_id="t1"
        ),
        actor=ADMIN,
    )
    [view] = connections.list_connections(engine)
    text = repr(view)
    assert sentinels.client_id not in text and sentinels.client_secret not in text
    assert view.client_id_hint == f"{sentinels.client_id[:4]}…{sentinels.client_id[-4:]}"
    assert view.expected_products == ("cloud_storage", "cc_chat")  # catalogue order
    creds = connections.load_credentials(engine, vault, view.id)
    assert sentinels.client_secret not in repr(creds) and sentinels.client_id not in repr(creds)


@pytest.mark.parametrize(
    ("client_id", "hint"), [("abcdefghijklmnop", "abcd…mnop"), ("abcdefgh", "…efgh"), ("abc", "…")]
)
def test_client_id_hint_never_reveals_most_of_the_id(client_id: str, hint: str) -> None:
    assert client_id_hint(client_id) == hint


def test_missing_connections_are_reported(engine: Engine, vault: Vault) -> None:
    import uuid

    with pytest.raises(NotFoundError):
        connections.get(engine, uuid.uuid4())
    with pytest.raises(NotFoundError, match="No connection is named 'ghost'"):
        connections.find_by_name(engine, "ghost")
    with pytest.raises(NotFoundError):
        connections.delete(engine, uuid.uuid4(), actor=ADMIN)


def test_granted_products_are_written_only_when_8x8_lists_other_ones(engine: Engine, vault: Vault) -> None:
    """granted_at says since when 8x8 has listed these products: a test that finds them as
    they were changes no connection (nor the connections' part of the status stamp)."""
    view = connections.create(engine, vault, form(), actor=ADMIN)
    assert view.granted_at is None

    def observed(products: set[str] | list[str]) -> connections.ConnectionView:
        with write_session(engine) as session:
            connections.record_granted(session, {view.id: products})
        return connections.get(engine, view.id)

    first = observed({"cloud_storage", "cc_chat"})
    assert first.granted_products == ("cc_chat", "cloud_storage") and first.granted_at is not None
    stamp = status.data_stamp(engine)
    assert observed(["cloud_storage", "cc_chat"]).granted_at == first.granted_at  # the same list
    assert status.data_stamp(engine) == stamp
    fewer = observed({"cloud_storage"})
    assert fewer.granted_products == ("cloud_storage",) and fewer.granted_at > first.granted_at  # type: ignore[operator]
    edited = connections.update(
        engine,
        vault,
        view.id,
        form(client_id="", client_secret=SecretStr("")),
        expected_version=fewer.version,
        actor=ADMIN,
        granted_products=["cloud_storage"],
    )
    assert edited.version == fewer.version + 1 and edited.granted_at == fewer.granted_at  # verified, same list
