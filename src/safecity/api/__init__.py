"""The REST API under ``/api/v1`` and the console's HTTP server (``safecity serve``).

``app.create_app`` builds the FastAPI app from an :class:`~safecity.api.context.ApiContext`;
``deps`` authenticates every request (session cookie with CSRF, or API token) and
checks permissions; ``schemas/`` holds the request and response models, apart
from the routes in ``routers/``.
"""
