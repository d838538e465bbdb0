"""``switchboard settings``: how long check history and the audit trail are kept."""

from __future__ import annotations

from datetime import timedelta

import click

from lib.cli.common import reports_errors, to_json
from lib.kernel.errors import ValidationError
from lib.kernel.words import iso, shown, span
from lib.services.checking import retention
from lib.services.guard.access import shell
from lib.services.runtime import open_runtime
from lib.store import db

_NOT_GIVING_BACK = (
    "This SQLite file reuses the space of pruned rows but does not give it back to the disk: "
    "run `switchboard db compact` once to change that (it rewrites the file)."
)


@click.group("settings")
def command() -> None:
    """How long history and the audit trail are kept: show, set."""


@command.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (times in seconds).")
@reports_errors
def show(as_json: bool) -> None:
    """What is kept for how long and why, and who last changed it.

    Also says when the SQLite file does not yet give the space of pruned rows back.
    """
    rt = open_runtime()
    setting = retention.current(rt.engine, shell())
    rules = retention.rules(setting, rt.settings.session_lifetime)
    vacuum = db.auto_vacuum(rt.engine)
    if as_json:
        click.echo(
            to_json(
                {
                    "rules": [
                        {
                            "name": r.name,
                            "what": r.what,
                            "keep_s": int(r.keep.total_seconds()),
                            "setting": r.setting,
                            "why": r.why,
                        }
                        for r in rules
                    ],
                    "updated_at": iso(setting.updated_at),
                    "updated_by": setting.updated_by or None,
                    "sqlite_auto_vacuum": vacuum,
                }
            )
        )
        return
    for rule in rules:
        how = f"change with {rule.setting}" if rule.setting else "fixed"
        click.echo(f"{rule.what}: {span(rule.keep)} ({how})\n  {rule.why}.")
    changed = (
        f"Last changed {shown(setting.updated_at)} by {setting.updated_by}."
        if setting.updated_at
        else "Check history and the audit trail are kept for the default times."
    )
    click.echo(
        f"\n{changed} Change with e.g. `switchboard settings set --keep-checks 30d --keep-audit 400d` "
        "(admins); the worker deletes older rows in small batches at each tick."
    )
    if vacuum not in (None, "incremental"):
        click.echo(_NOT_GIVING_BACK)


def _parsed(text: str | None, field: str, option: str) -> timedelta | None:
    if text is None:
        return None
    try:
        return retention.parse_keep(text, field)
    except ValidationError as exc:
        raise click.BadParameter(exc.errors[0].message, param_hint=option) from None


@command.command("set")
@click.option(
    "--keep-checks",
    "keep_checks",
    metavar="SPAN",
    help=f"How long check history is kept, e.g. 30d ({span(retention.SHORTEST)} to {span(retention.LONGEST)}).",
)
@click.option(
    "--keep-audit",
    "keep_audit",
    metavar="SPAN",
    help="How long the audit trail is kept, e.g. 400d; never shorter than check history.",
)
@reports_errors
def set_keep(keep_checks: str | None, keep_audit: str | None) -> None:
    """Keep check history, the audit trail or both this long.

    For every instance (the times are kept in the database); admins only, audited. Rows older
    than that are deleted by the worker in small batches at its next ticks: a shorter time
    cannot be undone.
    """
    if keep_checks is None and keep_audit is None:
        raise click.UsageError("Give --keep-checks, --keep-audit or both, e.g. --keep-checks 30d.")
    checks = _parsed(keep_checks, "keep_checks", "--keep-checks")
    audit_trail = _parsed(keep_audit, "keep_audit", "--keep-audit")
    rt = open_runtime()
    after = retention.set_keep(rt.engine, actor=shell(), keep_checks=checks, keep_audit=audit_trail)
    click.echo(
        f"Check history is kept {span(after.checks)}, the audit trail {span(after.audit)}; older rows go "
        "at the worker's next ticks."
    )
