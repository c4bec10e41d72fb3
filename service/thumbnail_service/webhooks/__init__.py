"""Completion webhooks (docs/api.md, "Completion webhooks"): a job that finishes POSTs its
document to the callback URL its client gave.

    targets   which URLs are accepted, and which addresses a delivery may connect to (SSRF)
    signing   the Webhook-Signature header: HMAC-SHA256 over timestamp and body
    delivery  the outbox loop the sweeper runs: claim due webhooks, POST, record, retry
"""
