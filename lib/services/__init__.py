"""What the faces (console, web API, CLI) call: each action starts by authorizing the
principal doing it. The sub-packages are layers (pyproject.toml's import-linter contracts):
reporting over checking over alerts, accounts, connections and content over history over guard."""
