"""The API page at /docs: Swagger UI rendering this server's /openapi.json.

Swagger UI's script and style come from the `swagger-ui-py` package (the api-page extra), read from its
folder and served by this server, so the page fetches nothing from anywhere else and works on an
offline device. swagger-ui-py is used for its files only: it is found, never imported (its code
would load Jinja2 and PyYAML for nothing). The page runs under the explain page's policy: no
inline script or style, and it talks to this server only.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from runtime.serving.protocol import RequestError

# The distribution that carries Swagger UI's files, and the module name it installs them under.
SWAGGER_UI_DISTRIBUTION, SWAGGER_UI_MODULE = "swagger-ui-py", "swagger_ui"
# Paths relative to /docs, so that the page works behind a proxy that serves it under a prefix.
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>imdb-sentiment API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="docs/swagger-ui.css">
<script src="docs/swagger-ui-bundle.js" defer></script>
<script src="docs/api-page.js" defer></script>
</head>
<body>
<div id="swagger-ui"></div>
</body>
</html>
"""
# Swagger UI's start, a file of its own (the policy allows no inline script). BaseLayout: no top bar
# to load another document; no validator, which would send the document to a site elsewhere.
START_SCRIPT = """"use strict";
window.ui = SwaggerUIBundle({
  url: new URL("openapi.json", document.baseURI).href,
  dom_id: "#swagger-ui",
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  validatorUrl: null,
  deepLinking: true,
});
"""
# The files of Swagger UI the page loads: the path under /docs, the file in the package, its type.
SWAGGER_FILES = {
    "/docs/swagger-ui.css": ("swagger-ui.css", "text/css; charset=utf-8"),
    "/docs/swagger-ui-bundle.js": ("swagger-ui-bundle.js", "text/javascript; charset=utf-8"),
}


def swagger_ui_folder() -> Path | None:
    """The folder of Swagger UI's files in the installed swagger-ui-py, or None if it is not installed."""
    spec = importlib.util.find_spec(SWAGGER_UI_MODULE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


class ApiPage:
    """/docs and its files, sent with `headers` (the pages' Content-Security-Policy and the like)."""

    def __init__(self, headers: dict[str, str]):
        self.headers = headers
        self._files: dict[str, bytes] = {}  # Swagger UI's files, read when first asked for

    def _require_swagger_ui(self) -> Path:
        folder = swagger_ui_folder()
        if folder is None:
            raise RequestError(
                501,
                f"the API page needs {SWAGGER_UI_DISTRIBUTION}, which is not installed: "
                "pip install 'imdb-sentiment-edge[api-page]'; /openapi.json is the document",
            )
        return folder

    async def page(self, request: Request) -> Response:
        self._require_swagger_ui()  # a page that cannot run is a clear 501, not a blank page
        return HTMLResponse(PAGE, headers=self.headers)

    async def start_script(self, request: Request) -> Response:
        return Response(START_SCRIPT, media_type="text/javascript; charset=utf-8", headers=self.headers)

    async def swagger_file(self, request: Request) -> Response:
        name, media_type = SWAGGER_FILES[request.url.path]
        content = self._files.get(name)
        if content is None:
            try:
                content = self._files[name] = (self._require_swagger_ui() / name).read_bytes()
            except OSError:
                raise RequestError(404, f"no such file: {name}") from None
        return Response(content, media_type=media_type, headers=self.headers)

    def routes(self) -> list[Route]:
        return [
            Route("/docs", self.page, methods=["GET"]),
            Route("/docs/api-page.js", self.start_script, methods=["GET"]),
            *(Route(path, self.swagger_file, methods=["GET"]) for path in SWAGGER_FILES),
        ]
