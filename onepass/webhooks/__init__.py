"""Webhooks to relying parties: a transactional outbox, a dispatcher, signed delivery.

A change and the webhook it causes commit in one transaction
(``onepass.webhooks.outbox.enqueue``); dispatchers claim due entries, sign them
(Standard Webhooks) and deliver them at least once, retrying on a schedule and
dead-lettering what cannot be delivered (``dlq_at``).
"""
