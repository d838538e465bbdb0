"""Running checks: one run (checks), when each connection is due (schedule),
the scheduled worker and the retention it prunes by."""
