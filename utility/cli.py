"""Placeholder: the admin API (built next)."""
from flask import Flask


def init_app(app: Flask) -> None:
    pass
