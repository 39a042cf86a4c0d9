"""The web console (`/console`): a page of plain HTML, CSS and JavaScript that signs in with
a customer ID and secret and then calls the public API with a session cookie.

Owns: the console's session (session.py: a signed cookie and its CSRF token), its routes
(routes.py: the page, its static files, sign in and out) and its assets (static/, package
data; hls.js is vendored, see static/vendor/hls.js/README.md). May import: api (routes.py
only), catalog, config, errors. api/auth.py imports session.py, which imports nothing of
liverec's: this package's __init__ imports nothing, so that there is no import cycle."""

__all__: list[str] = []
