"""Sources that need no glue: Claude Code hooks and OpenTelemetry logs (OTLP/HTTP)."""
