"""The web console (`/console`): a page of plain HTML, CSS and JavaScript that signs in with
a customer ID and secret and then calls the public API with a session cookie.

Owns: the console's routes (routes.py: the page, its static files, sign in and out) and
its assets (static/, package data; hls.js is vendored, see static/vendor/hls.js/README.md).
Its session (a signed cookie and its CSRF token) is api/session.py, since the API's
authentication accepts it: the console sits above the API and the API never imports it.
May import: api, catalog, config, errors."""

__all__: list[str] = []
