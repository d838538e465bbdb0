"""What the console shows that is not data: the setup guide and the page
registry."""
