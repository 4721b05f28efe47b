"""HTTP and WebSocket surface (Starlette). Handlers stay thin: parse, call the core, encode."""
