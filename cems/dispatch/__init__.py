"""Dispatch: turn plans into safe, expiring device commands."""
