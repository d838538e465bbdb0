"""The console's page registry: data the router turns into st.navigation (no Streamlit here)."""

from __future__ import annotations

from dataclasses import dataclass

from lib.services.guard.access import Permission, Principal


@dataclass(frozen=True)
class PageSpec:
    script: str  # path relative to app.py
    title: str
    icon: str
    url_path: str
    section: str
    needs: Permission | None  # None: public (no sign-in)


PAGES: tuple[PageSpec, ...] = (
    PageSpec(
        "pages/connections.py", "Connections", ":material/lan:", "connections", "Connections", Permission.READ_STATUS
    ),
    PageSpec(
        "pages/connect.py", "Connect", ":material/add_link:", "connect", "Connections", Permission.MANAGE_CONNECTIONS
    ),
    PageSpec(
        "pages/monitoring.py",
        "Monitoring",
        ":material/notifications:",
        "monitoring",
        "Connections",
        Permission.READ_STATUS,
    ),
    PageSpec("pages/users.py", "Users", ":material/group:", "users", "Admin", Permission.MANAGE_USERS),
    PageSpec("pages/tokens.py", "API tokens", ":material/key:", "tokens", "Admin", Permission.MANAGE_USERS),
    PageSpec("pages/audit.py", "Audit", ":material/policy:", "audit", "Admin", Permission.READ_AUDIT),
    PageSpec("pages/guide.py", "Setup guide", ":material/menu_book:", "guide", "Help", None),
)


# Where "/" leads. Streamlit serves a default page only at "/" (its url_path is ignored), so
# "/" is a hidden page that switches here, and /connections keeps working as a deep link.
HOME = "pages/connections.py"


def visible_to(principal: Principal | None) -> list[PageSpec]:
    """The pages someone may open: public ones, plus those their role allows."""
    return [p for p in PAGES if p.needs is None or (principal is not None and principal.can(p.needs))]


def hidden_from(principal: Principal | None) -> list[PageSpec]:
    """The pages someone may not open. They stay routed, out of the menu, so that a link to one
    runs its guard, which says which role it needs and who can grant it (not "page not found")."""
    return [p for p in PAGES if p not in visible_to(principal)]


def sections(pages: list[PageSpec]) -> dict[str, list[PageSpec]]:
    grouped: dict[str, list[PageSpec]] = {}
    for page in pages:
        grouped.setdefault(page.section, []).append(page)
    return grouped


def protected_paths() -> frozenset[str]:
    """URL paths that need a sign-in: "/" and every page that is not public."""
    return frozenset({"/", "/home"} | {f"/{p.url_path}" for p in PAGES if p.needs is not None})
