"""Who may do what (access) and the record of what was done (audit)."""
