"""End users: accounts, passwords, login sessions, throttling, login pages."""
