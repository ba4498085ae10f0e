"""The lab's MariaDB: SQL, the data directory, the services' databases and their schemas
(migrations, cached as a dump per set of versions)."""

import gzip
import hashlib
import subprocess
import threading

from . import LabError, configs
from .services import base_env
from .settings import HOST, RABBIT_URL, SCHEMA_VERSION

DATABASES = ("keystone", "glance", "placement", "nova_api", "nova_cell0", "nova", "neutron")


class Database:
    def __init__(self, settings, console):
        self.s = settings
        self.console = console

    def sql(self, statement, database=None, check=True):
        argv = ["/usr/bin/mariadb", f"--defaults-file={self.s.etc / 'mariadb.cnf'}", "-N", "-B", "-e", statement]
        if database:
            argv.append(database)
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        if check and proc.returncode:
            raise LabError(f"SQL failed: {proc.stderr.strip()}", self.s.labctl_log)
        return proc

    def sql_value(self, statement):
        proc = self.sql(statement, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def mariadb_install_db(self):
        s = self.s
        log = s.log("mariadb-install-db")
        with open(log, "ab") as out:
            rc = subprocess.run(
                [
                    "/usr/bin/mariadb-install-db",
                    f"--defaults-file={s.etc / 'mariadb.cnf'}",
                    "--auth-root-authentication-method=socket",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
            ).returncode
        if rc:
            raise LabError("mariadb-install-db failed", log)

    def schema_key(self):
        mariadb = subprocess.run(
            ["/usr/sbin/mariadbd", "--version"], capture_output=True, text=True, check=False
        ).stdout
        material = "|".join([self.s.venv_key, SCHEMA_VERSION, mariadb.strip(), configs.db_url("x"), RABBIT_URL])
        return hashlib.sha256(material.encode()).hexdigest()[:12]

    def databases(self):
        s = self.s
        user = f"'{configs.DB_USER}'@'{HOST}'"
        self.sql(
            f"CREATE USER {user} IDENTIFIED BY '{configs.DB_PASSWORD}'; GRANT ALL PRIVILEGES ON *.* TO {user}; "
            + " ".join(f"CREATE DATABASE {db};" for db in DATABASES)
        )
        dump = s.cache / f"lab-db-{self.schema_key()}.sql.gz"
        if dump.exists():
            with gzip.open(dump, "rb") as f:
                proc = subprocess.run(
                    ["/usr/bin/mariadb", f"--defaults-file={s.etc / 'mariadb.cnf'}"],
                    input=f.read(),
                    capture_output=True,
                    check=False,
                )
            if proc.returncode == 0:
                self.console.say(f"database schemas restored from {dump.name}")
                return
            self.console.say(f"restoring {dump.name} failed ({proc.stderr.decode().strip()[:200]}): running migrations")
            dump.unlink()
            self.sql("; ".join(f"DROP DATABASE {db}; CREATE DATABASE {db}" for db in DATABASES))
        self.migrate()
        tmp = dump.with_suffix(".tmp")
        with gzip.open(tmp, "wb") as out:
            proc = subprocess.run(
                [
                    "/usr/bin/mariadb-dump",
                    f"--defaults-file={s.etc / 'mariadb.cnf'}",
                    "--skip-dump-date",
                    "--single-transaction",
                    "--databases",
                    *DATABASES,
                ],
                capture_output=True,
                check=False,
            )
            out.write(proc.stdout)
        if proc.returncode == 0:
            tmp.replace(dump)
            self.console.say(f"database schemas cached as {dump}")
        else:
            tmp.unlink()

    def migrate(self):
        """Schema migrations in two parallel lanes (two cores)."""
        s = self.s
        v = s.venv_bin
        nova = [v("nova-manage"), "--config-file", s.etc / "nova" / "nova.conf"]
        lanes = {
            "dbsync-lane1": [
                [v("keystone-manage"), "--config-file", s.etc / "keystone" / "keystone.conf", "db_sync"],
                [v("glance-manage"), "--config-file", s.etc / "glance" / "glance-api.conf", "db_sync"],
                [v("placement-manage"), "--config-file", s.etc / "placement" / "placement.conf", "db", "sync"],
            ],
            "dbsync-lane2": [
                [*nova, "api_db", "sync"],
                [*nova, "cell_v2", "map_cell0", "--database_connection", configs.db_url("nova_cell0")],
                [*nova, "cell_v2", "create_cell", "--name", "cell1", "--verbose"],
                [*nova, "db", "sync"],
                [
                    v("neutron-db-manage"),
                    "--config-file",
                    s.etc / "neutron" / "neutron.conf",
                    "--config-file",
                    s.etc / "neutron" / "plugins" / "ml2" / "ml2_conf.ini",
                    "upgrade",
                    "heads",
                ],
            ],
        }
        self.console.say("running database migrations (first time for these versions, about a minute)")
        failed = []

        def lane(name, cmds):
            with open(s.log(name), "ab") as out:
                for cmd in cmds:
                    out.write(f"\n===== {' '.join(map(str, cmd))}\n".encode())
                    out.flush()
                    argv = [str(a) for a in cmd]
                    if subprocess.run(
                        argv, stdout=out, stderr=subprocess.STDOUT, env=base_env(self.s), check=False
                    ).returncode:
                        failed.append(name)
                        return

        threads = [threading.Thread(target=lane, args=item) for item in lanes.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failed:
            raise LabError("database migrations failed", s.log(failed[0]))
