"""Renders through a client generated from Keyward's own /openapi.json.

Run by scripts/api-check: argv is the folder holding the generated package
`client`, the server's base URL and a resolver token. Exits non-zero (an
AssertionError) if the generated code cannot render, read metadata or parse
an error answer.
"""

import sys

folder, base, token = sys.argv[1:4]
sys.path.insert(0, folder)

from client import AuthenticatedClient  # noqa: E402
from client.api.default import get_secrets, post_render  # noqa: E402
from client.models import Error, RenderRequest, Rendered  # noqa: E402

api = AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)

answer = post_render.sync(
    client=api,
    body=RenderRequest(reason="generated client check", template="token=${SECRET:GITHUB_TOKEN}"),
)
assert isinstance(answer, Rendered), answer
assert answer.text == "token=fuzz-value-0123456789", answer

missing = post_render.sync(
    client=api,
    body=RenderRequest(reason="generated client check", template="${SECRET:NOT_THERE}"),
)
assert isinstance(missing, Error), missing
assert missing.error.code == "missing_secrets", missing

names = [meta.name for meta in get_secrets.sync(client=api)]
assert "GITHUB_TOKEN" in names, names
print("generated client: rendered, listed and parsed an error through", base)
