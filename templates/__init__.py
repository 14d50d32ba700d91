"""Jinja templates for gradlint's HTML and Markdown reports (package data)."""
