"""The utility-facing domain: customers, vending, billing, payments, campaigns, incidents.

Each capability is a small interface with a built-in implementation (so Guichet runs
on its own) and adapters for the utility's real systems.
"""
