"""Mail to the people who sign in: an outbox written in the transaction of the change
that causes the mail, delivered by the dispatcher process(es) to an SMTP server."""
