"""Where Switchboard keeps things: the tables (models), the engine, sessions and migrations
(db), the encrypted envelope (vault) and the keyring it is opened with (keyring)."""
