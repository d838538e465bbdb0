"""Connections: what is stored, shown as hints (nothing is decrypted to draw this page)."""

from datetime import datetime, timezone

import pandas as pd
import streamlit as st

from lib import connections
from lib.products import PRODUCTS
from lib.ui.runtime import guard

rt = guard()

st.title("Connections")
views = connections.list_connections(rt.engine)
if not views:
    st.info("No connections yet. Add one from a shell: `python -m lib connections add --help`. "
            "See the Setup guide for where the Client ID and Client Secret come from.")
    st.stop()

now = datetime.now(timezone.utc)
st.dataframe(
    pd.DataFrame(
        {
            "Name": [v.name for v in views],
            "Environment": [v.environment for v in views],
            "Client ID": [v.client_id_hint for v in views],
            "Secret age (days)": [(now - v.secret_set_at).days for v in views],
            "Products enabled in 8x8": [", ".join(PRODUCTS[k].name for k in v.expected_products) for v in views],
        }
    ),
    hide_index=True,
    use_container_width=True,
)
