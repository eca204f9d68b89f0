"""The web dashboard and REST API (FastAPI), served by ``cems serve``."""
