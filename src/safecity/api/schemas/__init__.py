"""Request and response models of the API, one module per area (kept apart from routes)."""
