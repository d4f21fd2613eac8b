"""OpenID Shared Signals Framework 1.0 transmitter: streams an RP manages (``streams``),
the CAEP and RISC events 1pass tells them (``signals``), and the HTTP endpoints
(``routes``). The SETs themselves: ``webhooks.secevents``; their push through the
outbox: ``webhooks.dispatcher``."""
