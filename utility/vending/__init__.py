"""Prepaid vending: the interface every vending backend implements, and its implementations."""
