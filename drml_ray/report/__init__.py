"""Run reports: HTML and Markdown with figures."""
