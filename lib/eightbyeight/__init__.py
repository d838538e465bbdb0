"""The 8x8 client: the token, one read-only probe per product, and what their answers mean.

models (what goes in and comes out), transport and retry (how requests travel), answers
(reading 8x8's replies), client (the async EightByEight: a new token for every check, kept in
memory for that check only) and prober (its synchronous face, shared by the console and the
CLI). It knows the catalogue and the log redaction, and nothing of the database, the vault or
the services.
"""
