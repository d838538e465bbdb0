"""The console's page registry: data the router turns into st.navigation (no Streamlit here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageSpec:
    script: str  # path relative to app.py
    title: str
    icon: str
    url_path: str
    section: str


PAGES: tuple[PageSpec, ...] = (
    PageSpec("pages/connections.py", "Connections", ":material/lan:", "connections", "Connections"),
    PageSpec("pages/connect.py", "Connect", ":material/add_link:", "connect", "Connections"),
    PageSpec("pages/guide.py", "Setup guide", ":material/menu_book:", "guide", "Help"),
)


# Where "/" leads. Streamlit serves a default page only at "/" (its url_path is ignored), so
# "/" is a hidden page that switches here, and /connections keeps working as a deep link.
HOME = "pages/connections.py"


def sections() -> dict[str, list[PageSpec]]:
    grouped: dict[str, list[PageSpec]] = {}
    for page in PAGES:
        grouped.setdefault(page.section, []).append(page)
    return grouped
