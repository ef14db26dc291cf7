"""The API's routes, one module per area; models in ``safecity.api.schemas``."""
