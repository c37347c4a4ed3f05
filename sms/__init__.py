"""Outgoing and incoming SMS: text encoding, providers, the outbox."""
