"""Alert delivery: what an event says and how it reaches a channel, guarded against SSRF. Each
kind of channel (webhook, Slack, Teams, e-mail, …) is one module of lib.notify.kinds: its fields
and their rules, and its sender (lib.notify.spec says what a kind is). It knows the catalogue,
the kernel and the network, and nothing of the database, the vault or the services:
lib.services.alerts decides what to send and when.
"""
