"""The console's icon, inline as a data: URL (read once per process).

Not a :material/…: icon, which the browser would fetch from Google's CDN (the CSP forbids
it), and not a file path, which Streamlit serves from /media: only signed-in browsers may
read /media, and the sign-in prompt and the guide need the icon too.
"""

import base64
from pathlib import Path

FAVICON = (
    "data:image/png;base64,"
    + base64.b64encode((Path(__file__).parent / "assets" / "favicon.png").read_bytes()).decode()
)
