"""Exports: exactly the allow-listed columns, every format parses back, no secret inside."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import zipfile
from datetime import datetime
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from sqlalchemy import Engine

from lib.kernel.spreadsheet import csv_cell
from lib.services import connections
from lib.services.checking import checks
from lib.services.guard import audit
from lib.services.history import status
from lib.services.reporting import connections_table, export
from lib.services.runtime import Runtime
from lib.simulator import SimulatorServer
from lib.store.vault import Vault
from tests.fixtures.people import ADMIN
from tests.fixtures.prober import ProberFactory
from tests.test_checks import form_for
from tests.test_cli import new_install

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tested(runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory) -> Runtime:
    everything, _, storage_only = simulator.scenario.apps
    connections.create(runtime.engine, runtime.vault, form_for(everything, "Everything"), actor=ADMIN)
    connections.create(
        runtime.engine,
        runtime.vault,
        form_for(storage_only, "Storage", expected_products=("cloud_storage", "cc_chat"), tenant_id="tenant-x"),
        actor=ADMIN,
    )
    checks.run_checks(runtime, prober_factory(simulator.url), triggered_by=ADMIN)
    return runtime


def secrets_of(simulator: SimulatorServer, vault: Vault) -> list[str]:
    values = [v for app in simulator.scenario.apps for v in (app.client_id, app.client_secret)]
    values += [base64.b64encode(f"{a.client_id}:{a.client_secret}".encode()).decode() for a in simulator.scenario.apps]
    values += [base64.b64encode(k).decode() for k in vault.keyring.keys.values()]
    return values + simulator.state.issued_tokens() + ["v1.k1."]  # no ciphertext either


@pytest.mark.parametrize("fmt", ["csv", "json", "xlsx"])
def test_every_format_parses_back_with_exactly_the_allow_list(
    tested: Runtime, simulator: SimulatorServer, fmt: str
) -> None:
    result = export.export(tested.engine, fmt, actor=ADMIN)
    assert result.file_name.startswith("switchboard-status-") and result.file_name.endswith(f"Z.{fmt}")
    if fmt == "csv":
        frame = pd.read_csv(io.BytesIO(result.data))
    elif fmt == "json":
        frame = pd.DataFrame(json.loads(result.data))
    else:
        sheet = openpyxl.load_workbook(io.BytesIO(result.data)).active
        rows = list(sheet.values)
        frame = pd.DataFrame(rows[1:], columns=rows[0])
    assert tuple(frame.columns) == export.COLUMNS
    assert len(frame) == 10  # two connections x five products
    storage = frame[frame["connection"] == "Storage"].set_index("product")
    chat, store, realtime = (
        storage.loc[name] for name in ("Contact Center Chat", "Cloud Storage Service", "CC Realtime Analytics")
    )
    assert (chat["outcome_key"], chat["outcome"], chat["status"]) == (
        "product_not_enabled",
        "Product not enabled",
        "failing",
    )
    assert chat["granted_by_8x8"] == "no" and chat["expected"] == "yes"
    assert chat["who_must_act"] == "8x8 admin (Admin Console)" and "API app" in chat["fix"]
    assert chat["detail"]  # what 8x8 (here the simulator) said
    assert (store["outcome_key"], store["status"], int(store["http_status"])) == ("ok", "ok", 200)
    assert not isinstance(store["who_must_act"], str) or store["who_must_act"] == ""  # nobody must act on OK
    assert (realtime["expected"], realtime["status"]) == ("no", "not ticked")
    assert frame["expected"].isin(["yes", "no"]).all() and frame["granted_by_8x8"].isin(["yes", "no", "unknown"]).all()
    checked = frame["checked_at_utc"].dropna()
    if fmt == "xlsx":
        assert all(isinstance(v, datetime) and v.microsecond == 0 for v in checked)
    else:
        assert checked.str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()


@pytest.mark.parametrize("fmt", ["csv", "json", "xlsx"])
def test_no_secret_token_key_or_ciphertext_in_any_format(tested: Runtime, simulator: SimulatorServer, fmt: str) -> None:
    data = export.export(tested.engine, fmt, actor=ADMIN).data
    if fmt == "xlsx":  # look inside the zip's XML too
        import zipfile

        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            data = b"".join(archive.read(name) for name in archive.namelist())
    for needle in secrets_of(simulator, tested.vault):
        assert needle.encode() not in data


def test_untested_connections_are_exported_as_never_tested(runtime: Runtime, simulator: SimulatorServer) -> None:
    connections.create(runtime.engine, runtime.vault, form_for(simulator.scenario.apps[0], "Fresh"), actor=ADMIN)
    frame = pd.read_csv(io.BytesIO(export.export(runtime.engine, "csv", actor=ADMIN).data))
    assert set(frame["outcome_key"]) == {"never_tested"} and set(frame["outcome"]) == {"Never tested"}
    assert set(frame["granted_by_8x8"]) == {"unknown"} and set(frame["status"]) == {"never tested"}


def test_cli_export_writes_a_file_and_stdout(tmp_path: Path, simulator: SimulatorServer) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SWITCHBOARD_8X8_BASE_URL": simulator.url,
        "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",
        "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "conf" / "keyring.json"),
    }
    new_install(env)
    app = simulator.scenario.apps[0]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "lib",
            "connections",
            "add",
            "--name",
            "E",
            "--client-id",
            app.client_id,
            "--secret-stdin",
        ],
        input=app.client_secret + "\n",
        env=env,
        text=True,
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [sys.executable, "-m", "lib", "export", "--format", "json", "-o", "-"], env=env, capture_output=True, check=True
    )
    assert [r["product"] for r in json.loads(out.stdout)][:1] == ["CC Realtime Analytics"]
    assert app.client_secret.encode() not in out.stdout
    written = subprocess.run(
        [sys.executable, "-m", "lib", "export", "--format", "xlsx", "-o", str(tmp_path / "s.xlsx")],
        env=env,
        capture_output=True,
        check=False,
        text=True,
    )
    assert written.returncode == 0 and (tmp_path / "s.xlsx").stat().st_size > 0
    default = subprocess.run(
        [sys.executable, "-m", "lib", "export", "--format", "csv"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        check=False,
        text=True,
    )
    assert default.returncode == 0 and list(tmp_path.glob("switchboard-status-*Z.csv"))
    assert (
        subprocess.run(
            [sys.executable, "-m", "lib", "export", "--format", "pdf"], env=env, capture_output=True, check=False
        ).returncode
        == 2
    )
    narrowed = subprocess.run(
        [sys.executable, "-m", "lib", "export", "--format", "csv", "--outcome", "any-problem", "-o", "-"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert narrowed.splitlines()[0].startswith("connection,") and len(narrowed.splitlines()) == 1  # nothing fails
    trail = subprocess.run(
        [sys.executable, "-m", "lib", "audit", "--json"], env=env, capture_output=True, text=True, check=True
    ).stdout
    targets = [row["target"] for row in json.loads(trail) if row["action"] == "export"]
    assert str((tmp_path / "s.xlsx").resolve()) in targets and "standard output" in targets
    assert any(t.endswith(".csv") and t.startswith(str(tmp_path)) for t in targets)  # the default name, in full


def test_the_status_table_comes_from_two_queries(tested: Runtime) -> None:
    from sqlalchemy import event

    statements: list[str] = []

    def count(_c, _cur, statement, *_rest) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    engine: Engine = tested.engine
    event.listen(engine, "before_cursor_execute", count)
    table = status.table(engine)
    event.remove(engine, "before_cursor_execute", count)
    export.status_frame(table, export.uptimes(engine, table))
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 2


FORMULAS = ('=HYPERLINK("https://evil.example","Open")', "+1+1", "-2+3", "@SUM(A1)")


def test_the_guard_covers_every_formula_start() -> None:
    for text in (*FORMULAS, "\tTab", "\rCR"):
        assert csv_cell(text) == "'" + text
    assert csv_cell("plain") == "plain" and csv_cell(5) == 5 and csv_cell(None) is None


def _formula_connection(runtime: Runtime, simulator: SimulatorServer, environment: str) -> None:
    connections.create(
        runtime.engine,
        runtime.vault,
        form_for(simulator.scenario.apps[0], "=cmd|' /C calc'!A0", environment=environment),
        actor=ADMIN,
    )


@pytest.mark.parametrize("formula", FORMULAS)
def test_csv_cells_never_start_a_formula(runtime: Runtime, simulator: SimulatorServer, formula: str) -> None:
    _formula_connection(runtime, simulator, formula[:40])
    frame = pd.read_csv(
        io.BytesIO(export.export(runtime.engine, "csv", actor=ADMIN).data), dtype=str, keep_default_na=False
    )
    assert set(frame["environment"]) == {"'" + formula[:40]}
    assert set(frame["connection"]) == {"'=cmd|' /C calc'!A0"}
    for column in frame.columns:
        assert not frame[column].str.startswith(("=", "+", "-", "@", "\t", "\r")).any(), column


@pytest.mark.parametrize("formula", FORMULAS)
def test_xlsx_cells_are_text_never_formulas(runtime: Runtime, simulator: SimulatorServer, formula: str) -> None:
    _formula_connection(runtime, simulator, formula[:40])
    data = export.export(runtime.engine, "xlsx", actor=ADMIN).data
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    cells = [cell for row in sheet.iter_rows(min_row=2) for cell in row]
    assert {c.value for c in cells if c.column == 2} == {formula[:40]}  # the text as typed, shown as text
    assert all(c.data_type != "f" for c in cells)
    for cell in cells:
        if isinstance(cell.value, str) and cell.value.startswith(("=", "+", "-", "@", "\t", "\r")):
            assert cell.quotePrefix, cell.coordinate
    with zipfile.ZipFile(io.BytesIO(data)) as book:
        assert b"<f>" not in book.read("xl/worksheets/sheet1.xml")


def test_cli_exports_are_guarded_too(tmp_path: Path, simulator: SimulatorServer) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SWITCHBOARD_8X8_BASE_URL": simulator.url,
        "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",
        "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "conf" / "keyring.json"),
    }
    new_install(env)
    app = simulator.scenario.apps[0]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "lib",
            "connections",
            "add",
            "--name",
            "E",
            "--environment",
            "=1+1",
            "--client-id",
            app.client_id,
            "--secret-stdin",
        ],
        input=app.client_secret + "\n",
        env=env,
        text=True,
        check=True,
        capture_output=True,
    )
    csv_out = subprocess.run(
        [sys.executable, "-m", "lib", "export", "--format", "csv", "-o", "-"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert ",'=1+1," in csv_out and ",=1+1," not in csv_out
    subprocess.run(
        [sys.executable, "-m", "lib", "export", "--format", "xlsx", "-o", str(tmp_path / "s.xlsx")],
        env=env,
        capture_output=True,
        check=True,
    )
    sheet = openpyxl.load_workbook(tmp_path / "s.xlsx").active
    assert {c.data_type for row in sheet.iter_rows(min_row=2) for c in row if c.value == "=1+1"} == {"s"}


def test_an_export_follows_the_selection_and_the_audit_says_so(tested: Runtime) -> None:
    problems = connections_table.Selection(outcomes=frozenset({connections_table.ANY_PROBLEM}))
    frame = pd.read_csv(io.BytesIO(export.export(tested.engine, "csv", actor=ADMIN, selection=problems).data))
    assert set(frame["connection"]) == {"Storage"} and len(frame) == 5
    everything = pd.read_csv(io.BytesIO(export.export(tested.engine, "csv", actor=ADMIN).data))
    assert set(everything["connection"]) == {"Everything", "Storage"}
    export.export(tested.engine, "json", actor=ADMIN, selection=problems, written_to="/srv/reports/today.json")
    rows = [e for e in audit.events(tested.engine, ADMIN) if e.action == "export"][::-1]
    assert rows[0].target == "/srv/reports/today.json"
    assert "1 connection, 5 rows (shown: outcome any problem)" in rows[0].detail and "1 failing" in rows[0].detail
    assert "(everything)" in rows[1].detail and rows[1].target.startswith("switchboard-status-")


def test_the_excel_file_is_ready_to_read(tested: Runtime) -> None:
    sheet = openpyxl.load_workbook(io.BytesIO(export.export(tested.engine, "xlsx", actor=ADMIN).data)).active
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == f"A1:{openpyxl.utils.get_column_letter(len(export.COLUMNS))}11"
    header = [c.value for c in sheet[1]]
    when = sheet.cell(row=2, column=header.index("checked_at_utc") + 1)
    assert isinstance(when.value, datetime) and when.number_format == "yyyy-mm-dd hh:mm:ss"
    widths = {
        name: sheet.column_dimensions[openpyxl.utils.get_column_letter(i)].width
        for i, name in enumerate(header, start=1)
    }
    assert widths["fix"] > widths["status"] >= len("status") and max(widths.values()) <= 62


@pytest.mark.parametrize("fmt", ["csv", "json", "xlsx"])
def test_an_empty_fleet_exports_just_the_header(runtime: Runtime, fmt: str) -> None:
    data = export.export(runtime.engine, fmt, actor=ADMIN).data
    if fmt == "csv":
        assert data.decode().strip() == ",".join(export.COLUMNS)
    elif fmt == "json":
        assert json.loads(data) == []
    else:
        assert [c.value for c in openpyxl.load_workbook(io.BytesIO(data)).active[1]] == list(export.COLUMNS)
