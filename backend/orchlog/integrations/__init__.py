"""Sources that need no glue, as pure mappings (no I/O, no web framework):

- ``claude_code``: Claude Code hook input → agent log (the HTTP hook endpoint and ``orchlog hook``);
- ``otlp``: OTLP/HTTP logs → events (decoding, gzip, the generic record mapping, the dispatch);
- ``claude_otel`` and ``codex``: Claude Code's and Codex's own OTel events → agent logs of their
  session's agent, with the tokens and cost they report (types in ``agents``).
"""
