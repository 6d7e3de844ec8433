"""Outbound delivery: the SSRF guard, the webhook and partner postback sender, and the outbox worker."""
