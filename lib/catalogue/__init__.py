"""What Switchboard knows as data: the products, their settings, the outcomes of a test,
and the policy (retries, deadlines) every 8x8 call follows. Imports nothing of Switchboard."""
