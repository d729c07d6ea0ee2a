# The gitswarm agent image: `docker build -t gitswarm:0.1.0 .`
#
# gitswarm and exactly the lock's versions of its dependencies in a venv at /opt/gitswarm,
# git, ssh, gpg, tzdata, libatomic1 (regopy's native library), and the Docker CLI
# (gitswarm runs `docker stack deploy`): the client of Debian's docker.io package, not
# the engine. It runs as user 10001; reaching the Docker socket needs its group
# (`user: "10001:<gid of docker.sock>"`, as in deploy/gitswarm-stack.yml). State lives on the volume /var/lib/gitswarm (SQLite at
# /var/lib/gitswarm/gitswarm/state.db unless GITSWARM_STATE or GITSWARM_STATE_FILE says).
#
# Where no base image can be pulled, ./scripts/build-image builds the same image from a
# debootstrap rootfs (same paths, user, settings and healthcheck).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# The Docker CLI alone, from Debian's docker.io package (Apache-2.0).
FROM ${PYTHON_IMAGE} AS docker-cli
RUN apt-get update -q \
 && cd /tmp && apt-get download -q docker.io \
 && dpkg-deb -x docker.io_*.deb /tmp/docker.io \
 && install -D -m 0755 /tmp/docker.io/usr/bin/docker /out/usr/bin/docker \
 && install -D -m 0644 /tmp/docker.io/usr/share/doc/docker.io/copyright \
      /out/usr/share/doc/docker.io/copyright

# Wheels of gitswarm and of what it needs at run time, pinned by requirements.lock
# (which also pins the dev tools; those are not installed).
FROM ${PYTHON_IMAGE} AS wheels
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
COPY gitswarm ./gitswarm
RUN pip wheel --no-cache-dir -q -c requirements.lock -w /wheels .

FROM ${PYTHON_IMAGE}
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends \
      git ca-certificates openssh-client gpg tzdata libatomic1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 gitswarm \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/gitswarm \
      --shell /usr/sbin/nologin gitswarm \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/gitswarm \
 && install -d -m 0755 /etc/gitswarm
COPY --from=docker-cli /out/ /
COPY deploy/image/gitconfig /etc/gitconfig
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    python -m venv /opt/gitswarm \
 && /opt/gitswarm/bin/pip install --no-cache-dir -q --no-index --find-links /wheels gitswarm \
 && /opt/gitswarm/bin/gitswarm --version && docker --version \
 && /opt/gitswarm/bin/gitswarm serve --help >/dev/null \
 && /opt/gitswarm/bin/python -c "import regopy; regopy.Interpreter()"

ENV PATH=/opt/gitswarm/bin:$PATH \
    LANG=C.UTF-8 \
    HOME=/var/lib/gitswarm \
    XDG_DATA_HOME=/var/lib/gitswarm \
    GITSWARM_CACHE=/var/lib/gitswarm/cache \
    GITSWARM_KEYS_DIR=/etc/gitswarm/keys \
    GITSWARM_LISTEN=0.0.0.0:8080 \
    GITSWARM_LOG_FORMAT=json \
    PYTHONDONTWRITEBYTECODE=1
USER 10001
WORKDIR /var/lib/gitswarm
VOLUME /var/lib/gitswarm
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-m", "gitswarm.cli.healthcheck"]
LABEL org.opencontainers.image.title=gitswarm \
      org.opencontainers.image.licenses=Apache-2.0
ENTRYPOINT ["gitswarm"]
CMD ["serve"]
