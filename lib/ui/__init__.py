"""The console's face: Streamlit views, widgets and the checks they make (the only part of
Switchboard that imports Streamlit)."""
