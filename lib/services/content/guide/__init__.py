"""The setup guide: its steps as data, its anchors, and links into it (Streamlit-free).

Product sections and troubleshooting entries are generated from ``lib.catalogue`` so the guide
can never disagree with what the prober tests or reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lib.catalogue.outcomes import OUTCOMES
from lib.catalogue.products import PRODUCTS, SETTINGS, Product

GUIDE_PATH = "/guide"
ILLUSTRATIONS = Path(__file__).resolve().parent / "illustrations"


def anchor_url(anchor: str) -> str:
    """Relative link to a step or troubleshooting entry of the setup guide."""
    return f"{GUIDE_PATH}#{anchor}"


@dataclass(frozen=True)
class Step:
    anchor: str
    title: str
    body: str  # Markdown
    illustration: str | None = None  # file name in illustrations/


STEPS: tuple[Step, ...] = (
    Step(
        "sign-in",
        "Sign in to the 8x8 Admin Console",
        """
Open the 8x8 Admin Console with an administrator account. Any administrator can create an API
app, but only a **Super Admin** can give an app access to **Cloud Storage Service** (call
recordings and other stored files): if you need that product and are not a Super Admin, ask one
to do these steps with you.
""",
    ),
    Step(
        "create-app",
        "Open API Management and create an app",
        """
Go to **Home > API Management** and choose **Create API App**. An *API app* is one set of
credentials (a Client ID and a Client Secret) and the list of API products those credentials
may use.
""",
        "admin-console-path.svg",
    ),
    Step(
        "name-app",
        "Name and describe the app",
        """
Give the app a name that says who uses it, for example *Switchboard - reporting* or *CRM chat
integration*, and a sentence of description. Create one app per system that uses the API: when
a system is retired, or a secret leaks, you can then revoke exactly one app without breaking the
others.
""",
    ),
    Step(
        "choose-products",
        "Choose the API products",
        """
Tick the products this app needs, and nothing more. Each product below says what it gives an
app, what Switchboard calls to test it, and which settings Switchboard will ask you for.
""",
        "choose-products.svg",
    ),
    Step(
        "save-app",
        "Save the app",
        """
Save. 8x8 now creates the Client ID and the Client Secret. Changes to an app's products take a
few minutes to reach 8x8's API gateway, so a test made straight after a change can still show
the old list.
""",
    ),
    Step(
        "copy-credentials",
        "Copy the Client ID and the Client Secret",
        """
Copy both values straight into Switchboard's [Connect](/connect) page (next steps). Treat the secret like
a password:

- **The secret may be shown only once.** 8x8's own pages disagree on whether it can be revealed
  again later, so plan as if it cannot.
- Do not send it by e-mail or chat, and do not keep it in a document.
- **Lost it?** Regenerate the secret on the app in the Admin Console, then open the connection in
  Switchboard, choose **Edit** and paste the new secret. The old secret stops working as soon
  as a new one is made.
""",
        "copy-credentials.svg",
    ),
    Step(
        "find-settings",
        "Find the values some products need",
        """
The token alone works for every region, but each product's API lives in a region, and some
need to know your tenant or PBX. Switchboard only asks for the values the products you chose
need.

| setting | values | where to find it |
|---|---|---|
| Analytics region | `us`, `eu`, `au`, `ca` | The region of your Contact Center tenant; ask 8x8 or your partner if unsure. |
| Cloud Storage region | `us-west`, `us-east`, `uk`, `ap`, `ca` | Any valid region works for the test, which also tells you the regions that hold your data. |
| Quality Management region | `us-west`, `us-east`, `uk`, `ap`, `ca` | The region your Quality Management data is kept in. |
| Chat region | `us`, `eu`, `ca`, `ap` | The region of your Contact Center chat. |
| Contact Center tenant ID | letters, digits, `.` `-` `_` | 8x8 Configuration Manager; it is also sent as the `x-8x8-tenant-id` header of webhook events. Needed for chat; for analytics only when your account has several tenants. |
| PBX name | letters, digits, `.` `-` `_` | The PBX your Quality Management data comes from. |

The three region lists are different on purpose: a European customer may be `eu` for analytics
and chat but `uk` for storage and Quality Management.
""",
    ),
    Step(
        "enter-in-switchboard",
        "Enter them in Switchboard",
        """
Open [Connect](/connect), tick the same products you ticked in 8x8, and fill in the form.
**Verify & save** first asks 8x8 for a token with exactly the values in the form; nothing is
saved if 8x8 refuses them. When 8x8 accepts them, Switchboard shows what 8x8 granted next to
what you ticked, and highlights any difference.

The secret is encrypted before it is stored and is never shown again, not even to you. When you
edit a connection, leave the secret blank to keep the stored one. Then use **Test all products
now**, or the **Connections** page, to call one read-only endpoint of each product.
""",
        "switchboard-form.svg",
    ),
)

TROUBLESHOOTING_ANCHOR = "troubleshooting"


def product_sections() -> list[tuple[str, str, str]]:
    """(anchor, title, markdown) for every product, from the catalogue."""
    sections = []
    for product in PRODUCTS.values():
        needs = ", ".join(SETTINGS[s].label for s in product.needs)
        sections.append(
            (
                product.guide_anchor,
                product.name,
                (
                    f"{product.summary}  \n**Switchboard tests it by:** {product.tests_what}  \n"
                    f"**Switchboard asks for:** {needs} ([where to find them]({anchor_url('find-settings')})).  \n"
                    f"8x8 lists it in a token as `{product.api_product}`.{_shared_name(product)}"
                ),
            )
        )
    return sections


def _shared_name(product: Product) -> str:
    """A note when 8x8's token names several products alike (it says which app may use which)."""
    alike = [p.name for p in PRODUCTS.values() if p.api_product == product.api_product and p is not product]
    if not alike:
        return ""
    return (
        f" 8x8 uses that same name for {' and '.join(alike)}, so a token that lists it does not say which "
        "of them the app may use: Switchboard counts both as granted, and the test of each product's own "
        "endpoint tells them apart."
    )


def troubleshooting_entries() -> list[tuple[str, str, str]]:
    """(anchor, title, markdown) for every outcome, from the catalogue."""
    return [
        (
            o.guide_anchor,
            f"{o.icon} {o.label} (`{o.key}`)",
            (f"**Cause:** {o.cause}  \n**Who must act:** {o.actor.value}  \n**Fix:** {o.fix}  \n{o.help}"),
        )
        for o in OUTCOMES.values()
    ]


ANCHORS: frozenset[str] = frozenset(
    [s.anchor for s in STEPS]
    + [TROUBLESHOOTING_ANCHOR]
    + [a for a, _, _ in product_sections()]
    + [a for a, _, _ in troubleshooting_entries()]
)
