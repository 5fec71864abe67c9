"""`polyrec serve`: an HTTP service over a saved run (needs the ``serve`` extra).

``app.create_app`` / ``app.serve`` build and run the FastAPI service; ``events`` holds the
feedback store and its export, which need no extra (``polyrec events export``).
"""
