"""Who may act: console users and their sessions, the first admin, API tokens
for machines, and the single sign-on allow-list."""
