# orchlog on SQLite. Build: docker build -t orchlog .   Run: see docker-compose.yml
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    ORCHLOG_DB=/data/orchlog.db ORCHLOG_HOST=0.0.0.0 ORCHLOG_PORT=8000

WORKDIR /src
COPY pyproject.toml README.md ./
COPY backend ./backend
COPY schema ./schema
COPY frontend_stub ./frontend_stub
RUN pip install --no-cache-dir . && rm -rf /src

RUN useradd --system --uid 10001 orchlog && mkdir -p /data && chown orchlog /data
USER orchlog
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"

# A non-loopback bind needs a token: set ORCHLOG_TOKENS (name:scopes:token, comma separated).
CMD ["orchlog", "serve"]
