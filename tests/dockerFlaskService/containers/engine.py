"""Test scaffolding: Podman, and stand-ins for the upstream images (python, nginx, prometheus, postgres), built
from Debian packages because no container registry is reachable where the tests run.

Each stand-in is tagged with the exact name dockerFlaskService/Dockerfile and docker-compose.yml
use, so those files are tested unchanged; users pull the real images. A stand-in is built once and
reused (`podman image exists`), and rebuilt when its recipe here changes (a label holds its hash).
"""
import hashlib
import inspect
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Settings this machine needs (runc, cgroupfs, ulimits), from the repository, not /etc.
CONTAINERS_CONF = HERE / "containers.conf"
PODMAN = shutil.which("podman") or "/usr/bin/podman"
DEBIAN = "http://deb.debian.org/debian"

PYTHON_IMAGE = "docker.io/library/python:3.11.14-slim"
NGINX_IMAGE = "docker.io/library/nginx:1.28-alpine"
PROMETHEUS_IMAGE = "docker.io/prom/prometheus:v3.5.0"
POSTGRES_IMAGE = "docker.io/library/postgres:15-bookworm"


def environment(**extra):
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF), **extra}


def podman(*args, check=True, timeout=600, **options):
    """Run podman with the repository's containers.conf; returns the CompletedProcess (text)."""
    result = subprocess.run([PODMAN, *args], env=environment(), capture_output=True, text=True,
                            timeout=timeout, **options)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} exited {result.returncode}: {result.stderr[-3000:]}")
    return result


# The official nginx image's entrypoint, in the parts the compose file relies on: the executable
# /docker-entrypoint.d/*.envsh sourced in order, then /etc/nginx/templates/*.template rendered into
# conf.d/ by envsubst limited to the variables the environment defines (20-envsubst-on-templates.sh).
NGINX_ENTRYPOINT = r"""#!/bin/sh
set -eu
for script in /docker-entrypoint.d/*.envsh; do
    if [ -x "$script" ]; then . "$script"; fi
done
defined=$(env | cut -d= -f1 | sed 's/^/${/; s/$/}/' | tr '\n' ' ')
for template in /etc/nginx/templates/*.template; do
    [ -f "$template" ] || continue
    name=$(basename "$template" .template)
    envsubst "$defined" < "$template" > "/etc/nginx/conf.d/$name"
done
exec "$@"
"""


# The official postgres image's entrypoint, in the parts the compose file relies on: on an empty
# PGDATA, a cluster whose superuser is POSTGRES_USER with POSTGRES_PASSWORD (refused without one)
# and a database POSTGRES_DB, reached over the network with a password; then postgres in the
# foreground as the postgres user.
POSTGRES_ENTRYPOINT = r"""#!/bin/sh
set -eu
: "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}" "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA
run_as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    if [ -z "${POSTGRES_PASSWORD:-}" ]; then
        echo "Error: Database is uninitialized and superuser password is not specified." >&2
        echo "       You must specify POSTGRES_PASSWORD to a non-empty value for the superuser." >&2
        exit 1
    fi
    printf '%s\n' "$POSTGRES_PASSWORD" > /tmp/pwfile
    chown postgres /tmp/pwfile
    # UTF-8, as the official image's initdb: a SQL_ASCII database hands psycopg bytes, not text.
    run_as_postgres initdb --username="$POSTGRES_USER" --pwfile=/tmp/pwfile --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f /tmp/pwfile
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    run_as_postgres pg_ctl -o "-c listen_addresses=''" -w start >/dev/null
    if [ "$POSTGRES_DB" != postgres ]; then
        run_as_postgres psql -v ON_ERROR_STOP=1 --username="$POSTGRES_USER" --dbname=postgres \
            -c "CREATE DATABASE \"$POSTGRES_DB\"" >/dev/null
    fi
    run_as_postgres pg_ctl -m fast -w stop >/dev/null
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups "$@"
"""


def _debootstrap(suite, packages, root, script=None):
    command = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", suite, str(root), DEBIAN]
    if script:  # a suite newer than this debootstrap knows: the unstable script fits any of them
        command.append(script)
    subprocess.run(command, check=True, capture_output=True, timeout=1200)
    subprocess.run(["chroot", str(root), "apt-get", "clean"], check=True, capture_output=True)
    for cache in ("var/lib/apt/lists", "var/cache/apt", "var/log"):
        shutil.rmtree(root / cache, ignore_errors=True)
        (root / cache).mkdir(parents=True, exist_ok=True)


def _import(root, name, recipe, changes):
    with tempfile.NamedTemporaryFile(suffix=".tar") as archive:
        with tarfile.open(archive.name, "w") as tar:
            tar.add(root, arcname=".")
        label = f"LABEL stand-in.recipe={recipe}"
        args = [arg for change in [label, *changes] for arg in ("--change", change)]
        podman("import", *args, archive.name, name)


def _build_python(root):
    """python:slim: Debian 12's Python 3.11 as `python`, pip and venv, and the host's CA bundle so
    pip inside a build reaches the package index the way the host does."""
    _debootstrap("bookworm", ["python3", "python3-venv", "python3-pip", "ca-certificates", "passwd"], root)
    (root / "usr/local/bin/python").symlink_to("/usr/bin/python3")
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", root / "etc/ssl/certs/ca-certificates.crt")
    return ["ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin", 'CMD ["python3"]']


def _build_nginx(root):
    """nginx: the image's version line (>= 1.27.3, `resolve` in upstream servers) is newer than
    Debian 12's 1.22, so the nginx of Debian's testing suite (forky); wget for the healthcheck."""
    _debootstrap("forky", ["nginx", "gettext-base", "wget", "mawk"], root,
                 script="/usr/share/debootstrap/scripts/sid")
    for site in (root / "etc/nginx/sites-enabled").glob("*"):
        site.unlink()  # Debian's default site would take port 80 from the template's server
    (root / "etc/nginx/templates").mkdir(exist_ok=True)
    (root / "docker-entrypoint.d").mkdir(exist_ok=True)
    for log, device in (("access.log", "/dev/stdout"), ("error.log", "/dev/stderr")):
        (root / "var/log/nginx").mkdir(parents=True, exist_ok=True)
        (root / "var/log/nginx" / log).unlink(missing_ok=True)
        (root / "var/log/nginx" / log).symlink_to(device)
    entrypoint = root / "docker-entrypoint.sh"
    entrypoint.write_text(NGINX_ENTRYPOINT)
    entrypoint.chmod(0o755)
    return ['ENTRYPOINT ["/docker-entrypoint.sh"]', 'CMD ["nginx", "-g", "daemon off;"]', "STOPSIGNAL SIGQUIT"]


def _build_prometheus(root):
    """prom/prometheus: Debian 12's Prometheus, started as the official image starts it."""
    _debootstrap("bookworm", ["prometheus"], root)
    (root / "prometheus").mkdir(exist_ok=True)
    os.chown(root / "prometheus", 65534, 65534)
    (root / "etc/prometheus").mkdir(exist_ok=True)
    return ["USER 65534:65534", "WORKDIR /prometheus", 'ENTRYPOINT ["/usr/bin/prometheus"]',
            'CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]']


def _build_postgres(root):
    """postgres:15-bookworm: Debian 12's PostgreSQL 15, set up from POSTGRES_USER, POSTGRES_PASSWORD
    and POSTGRES_DB in /var/lib/postgresql/data on its first start, as the official image does."""
    _debootstrap("bookworm", ["postgresql-15"], root)
    for cluster in ("etc/postgresql", "var/lib/postgresql/15"):
        shutil.rmtree(root / cluster, ignore_errors=True)  # Debian's own cluster; the entrypoint makes one
    entrypoint = root / "usr/local/bin/docker-entrypoint.sh"
    entrypoint.write_text(POSTGRES_ENTRYPOINT)
    entrypoint.chmod(0o755)
    return ["ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ENV PGDATA=/var/lib/postgresql/data", 'ENTRYPOINT ["docker-entrypoint.sh"]',
            'CMD ["postgres", "-c", "listen_addresses=*"]', "STOPSIGNAL SIGINT", "EXPOSE 5432"]


STAND_INS = {PYTHON_IMAGE: _build_python, NGINX_IMAGE: _build_nginx, PROMETHEUS_IMAGE: _build_prometheus,
             POSTGRES_IMAGE: _build_postgres}


def _recipe(build):
    """A hash of what builds this stand-in, so a change to it rebuilds it (and only it)."""
    text = inspect.getsource(build) + inspect.getsource(_debootstrap)
    text += {_build_nginx: NGINX_ENTRYPOINT, _build_postgres: POSTGRES_ENTRYPOINT}.get(build, "")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stand_in(name):
    """Build the stand-in for upstream image `name` unless one from the same recipe exists."""
    build = STAND_INS[name]
    recipe = _recipe(build)
    if podman("image", "exists", name, check=False).returncode == 0:
        label = podman("image", "inspect", "--format", '{{index .Labels "stand-in.recipe"}}', name).stdout.strip()
        if label == recipe:
            return name
    with tempfile.TemporaryDirectory(prefix="standin-", dir="/var/tmp") as directory:
        root = Path(directory) / "root"
        changes = build(root)
        _import(root, name, recipe, changes)
    return name


if __name__ == "__main__":  # build them all ahead: python -m tests.dockerFlaskService.containers.engine
    for image in STAND_INS:
        print(stand_in(image), flush=True)
