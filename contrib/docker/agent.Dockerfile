# The Python example agent (contrib/python/examples/echo_agent.py) for compose.yaml. Build
# from the repository root:
#
#   docker build -f contrib/docker/agent.Dockerfile -t emonk-agent .
#
# AGENT_IMAGE is any Debian-like base with python3 (3.9+) and its venv module. pip fetches
# websockets from PyPI; behind a proxy pass HTTP_PROXY/HTTPS_PROXY with --build-arg (and a
# base that trusts the proxy's CA, with PIP_CERT pointing at the bundle).
ARG AGENT_IMAGE=python:3.12-slim-bookworm
FROM ${AGENT_IMAGE}
COPY contrib/python /opt/emonk-python
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir /opt/emonk-python
# The gateway image's uid, so the one gateway token file (owned by 10001, mode 0600) serves
# both containers. The agent's container mounts no state volume, so it still cannot touch
# the gateway's files.
USER 10001:10001
ENV PATH=/opt/venv/bin:$PATH
# The token comes from a secret file (EMONK_GATEWAY_TOKEN_FILE, set by compose.yaml) and is
# put into the agent's own environment at start, not into the container's configuration,
# where `docker inspect` would show it.
ENTRYPOINT ["sh", "-c", "if [ -n \"$EMONK_GATEWAY_TOKEN_FILE\" ]; then EMONK_GATEWAY_TOKEN=$(cat \"$EMONK_GATEWAY_TOKEN_FILE\") || exit 78; export EMONK_GATEWAY_TOKEN; fi; exec python3 /opt/emonk-python/examples/echo_agent.py \"$@\"", "echo_agent"]
