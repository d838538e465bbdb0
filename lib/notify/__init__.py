"""Alert delivery: what an event says and how it reaches a channel (webhook, Slack, Teams,
e-mail), guarded against SSRF, and what each kind's URL and secret must be (lib.notify.kinds).
It knows the catalogue, the kernel and the network, and nothing of the database, the vault or
the services: lib.services.alerts decides what to send and when.
"""
