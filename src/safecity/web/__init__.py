"""The operator console: HTML pages and their assets, on top of the API."""
