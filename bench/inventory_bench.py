"""Inventory benchmark on the lab cloud (`make bench`; a measurement, not a test).

500 servers in the lab's fake-driver availability zone, spread over three
projects that are three clouds.yaml entries. Timed with `ansible-inventory
--list`, interleaved, each repetition running every variant once:

  ours-cold    monoscape.paas.openstack_servers, no cache
  ours-cached  the same with a warm jsonfile cache
  os-cloud     openstack.cloud.openstack (from PyPI's ansible==12.3.0, extracted
               into a benchmark-only collections path under ~/.cache/monoscape)
  static       a static YAML inventory of the same hosts, groups and hostvars
  raw-list     one token + one detailed server-list call per cloud, in parallel
               (bench/raw_server_list.py); floor = static + raw-list

Prints medians and ratios against the targets (cold >= 2x faster than
openstack.cloud and within 1.5x of the floor; cached within 1.2x of static);
asserts nothing about absolute times. The servers are deleted at the end
unless --keep (a later run reuses kept ones).
"""

import argparse
import json
import os
import pathlib
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor

import openstack
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CACHE = pathlib.Path(os.environ.get("MONOSCAPE_CACHE", "~/.cache/monoscape")).expanduser()
ANSIBLE_WHEEL = "12.3.0"
OS_CLOUD_COLLECTIONS = CACHE / f"bench-collections-ansible-{ANSIBLE_WHEEL}"
AZ = "fake"
BATCH = 50  # servers per multi-create call


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------- prerequisites


def lab_env():
    out = subprocess.run([str(ROOT / "lab" / "labctl"), "env"], capture_output=True, text=True, check=True).stdout
    env = {}
    for line in out.splitlines():
        if line.startswith("export "):
            key, _, value = line[len("export ") :].partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


def openstack_cloud_collection():
    """openstack.cloud from the ansible wheel, in a collections path used only here."""
    marker = OS_CLOUD_COLLECTIONS / "ansible_collections" / "openstack" / "cloud" / "MANIFEST.json"
    if marker.exists():
        return OS_CLOUD_COLLECTIONS
    log(f"extracting openstack.cloud from ansible=={ANSIBLE_WHEEL} (pip download, once)")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, f"ansible=={ANSIBLE_WHEEL}"],
            check=True,
        )
        wheel = next(pathlib.Path(tmp).glob("ansible-*.whl"))
        staging = pathlib.Path(f"{OS_CLOUD_COLLECTIONS}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        with zipfile.ZipFile(wheel) as archive:
            names = [n for n in archive.namelist() if n.startswith("ansible_collections/openstack/cloud/")]
            archive.extractall(staging, names)
        shutil.rmtree(OS_CLOUD_COLLECTIONS, ignore_errors=True)
        staging.rename(OS_CLOUD_COLLECTIONS)
    return OS_CLOUD_COLLECTIONS


# ---------------------------------------------------------------------- the servers


class Fleet:
    """Three projects, one user with member on each, N servers in the fake AZ."""

    def __init__(self, admin, prefix, clouds, servers):
        self.admin = admin
        self.prefix = prefix
        self.projects = [f"{prefix}-p{i}" for i in range(clouds)]
        self.user = f"{prefix}-user"
        self.per_project = [servers // clouds + (1 if i < servers % clouds else 0) for i in range(clouds)]
        # kept between runs: a new password would revoke the tokens of builds still in progress
        self.secret_file = CACHE / "bench" / f"{prefix}.password"
        self.password = self.secret_file.read_text().strip() if self.secret_file.exists() else None

    def ensure(self):
        identity = self.admin.identity
        member = identity.find_role("member", ignore_missing=False)
        user = identity.find_user(self.user, domain_id="default")
        if user is None or self.password is None:
            self.password = secrets.token_urlsafe(16)
            self.secret_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(self.password)
            if user is None:
                user = identity.create_user(name=self.user, domain_id="default", password=self.password)
            else:  # only when the password was lost: this revokes the user's tokens
                identity.update_user(user, password=self.password)
        image = self.admin.image.find_image("debian-12", ignore_missing=False)
        flavor = min(self.admin.compute.flavors(), key=lambda f: (f.ram, f.vcpus))
        network = self.admin.network.find_network("private", ignore_missing=False)
        for name, count in zip(self.projects, self.per_project, strict=True):
            project = identity.find_project(name, domain_id="default") or identity.create_project(
                name=name, domain_id="default", description="inventory benchmark"
            )
            identity.assign_project_role_to_user(project, user, member)
            self.admin.set_compute_quotas(project.id, instances=-1, cores=-1, ram=-1)
            self.admin.set_network_quotas(project.id, port=-1)
            self.fill(project, count, image, flavor, network)
        self.wait_active()

    def servers(self, project_id):
        return list(self.admin.compute.servers(all_projects=True, project_id=project_id))

    def fill(self, project, count, image, flavor, network):
        have = len(self.servers(project.id))
        auth = {**self.admin.config.config["auth"], "username": self.user, "password": self.password}
        auth.update(project_name=project.name, project_id=None)
        conn = openstack.connect(auth={k: v for k, v in auth.items() if v}, region_name="RegionOne")
        while have < count:
            batch = min(BATCH, count - have)
            conn.compute.create_server(
                name=f"{project.name}-{have:04d}",
                image_id=image.id,
                flavor_id=flavor.id,
                networks=[{"uuid": network.id}],
                availability_zone=AZ,
                metadata={"monoscape_role": "node", "monoscape_tenant": project.name, "monoscape_app": "bench"},
                min_count=batch,
                max_count=batch,
            )
            have += batch
            log(f"{project.name}: {have}/{count} servers requested")

    def wait_active(self, timeout=3600):
        wanted = sum(self.per_project)
        deadline = time.monotonic() + timeout
        while True:
            states = {}
            for name in self.projects:
                project = self.admin.identity.find_project(name, domain_id="default")
                for server in self.servers(project.id):
                    states[server.status] = states.get(server.status, 0) + 1
            active = states.get("ACTIVE", 0)
            if active >= wanted:
                log(f"{active} servers ACTIVE")
                return
            if states.get("ERROR"):
                raise SystemExit(f"bench: {states['ERROR']} servers went to ERROR; see the lab's nova logs")
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: servers not ACTIVE after {timeout}s: {states}")
            log(f"waiting for servers: {states}")
            time.sleep(10)

    def clouds_yaml(self, auth_url):
        clouds = {}
        for index, name in enumerate(self.projects):
            clouds[f"{self.prefix}-{index}"] = {
                "auth": {
                    "auth_url": auth_url,
                    "username": self.user,
                    "password": self.password,
                    "project_name": name,
                    "user_domain_name": "Default",
                    "project_domain_name": "Default",
                },
                "region_name": "RegionOne",
                "identity_api_version": 3,
            }
        return {"clouds": clouds}

    def delete(self):
        identity = self.admin.identity
        doomed = []
        for name in self.projects:
            project = identity.find_project(name, domain_id="default")
            if project is not None:
                doomed += self.servers(project.id)
        log(f"deleting {len(doomed)} servers")
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda s: self.admin.compute.delete_server(s.id, ignore_missing=True), doomed))
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            left = sum(len(self.servers(p.id)) for p in filter(None, (identity.find_project(n) for n in self.projects)))
            if not left:
                break
            log(f"{left} servers still being deleted")
            time.sleep(10)
        for name in self.projects:
            project = identity.find_project(name, domain_id="default")
            if project is not None:
                identity.delete_project(project)
        user = identity.find_user(self.user, domain_id="default")
        if user is not None:
            identity.delete_user(user)
        self.secret_file.unlink(missing_ok=True)


# ---------------------------------------------------------------------- the variants


def write_configs(work, fleet, auth_url):
    clouds = list(fleet.clouds_yaml(auth_url)["clouds"])
    (work / "clouds.yaml").write_text(yaml.safe_dump(fleet.clouds_yaml(auth_url)))
    (work / "clouds.yaml").chmod(0o600)
    ours = {"plugin": "monoscape.paas.openstack_servers", "clouds": clouds}
    (work / "cold.openstack_servers.yml").write_text(yaml.safe_dump(ours))
    cached = dict(
        ours,
        cache=True,
        cache_plugin="ansible.builtin.jsonfile",
        cache_connection=str(work / "cache"),
        cache_timeout=86400,
    )
    (work / "cached.openstack_servers.yml").write_text(yaml.safe_dump(cached))
    (work / "oscloud" / "openstack.yml").parent.mkdir(exist_ok=True)
    (work / "oscloud" / "openstack.yml").write_text(
        yaml.safe_dump({"plugin": "openstack.cloud.openstack", "only_clouds": clouds, "fail_on_errors": True})
    )
    return clouds


def static_inventory(listing):
    """A YAML inventory with the hosts, groups and hostvars of an `ansible-inventory --list` output."""

    def plain(value):
        if isinstance(value, dict):
            if set(value) == {"__ansible_unsafe"}:
                return value["__ansible_unsafe"]
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value

    listing = plain(listing)
    hostvars = listing.pop("_meta")["hostvars"]
    groups = {}
    for name, group in listing.items():
        if name in ("all", "ungrouped"):
            continue
        groups[name] = {"hosts": dict.fromkeys(group.get("hosts", []))}
    return {"all": {"hosts": hostvars, "children": groups}}


def compat_shim(work):
    """openstack.cloud 2.5.0 (in ansible 12.3.0) reads openstack.version.__version__, which
    openstacksdk 4.x no longer imports with `import openstack`: the plugin fails with
    "module 'openstack' has no attribute 'version'". A sitecustomize that imports it makes the
    plugin run; it costs nothing extra (the plugin imports openstacksdk anyway)."""
    shim = work / "oscloud-shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text("import openstack.version  # noqa: F401\n")
    return shim


class Runner:
    def __init__(self, work, clouds, env):
        self.work = work
        self.clouds = clouds
        self.base_env = dict(
            env,
            OS_CLIENT_CONFIG_FILE=str(work / "clouds.yaml"),
            ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
            NO_COLOR="1",
        )
        self.commands = {
            "ours-cold": self.inventory(work / "cold.openstack_servers.yml"),
            "ours-cached": self.inventory(work / "cached.openstack_servers.yml"),
            "os-cloud": self.inventory(
                work / "oscloud" / "openstack.yml",
                ANSIBLE_COLLECTIONS_PATH=f"{openstack_cloud_collection()}:{ROOT / '.collections'}",
                ANSIBLE_INVENTORY_ENABLED="openstack.cloud.openstack",
                PYTHONPATH=str(compat_shim(work)),
            ),
            "static": self.inventory(work / "static.yml", ANSIBLE_INVENTORY_ENABLED="ansible.builtin.yaml"),
            "raw-list": (
                [sys.executable, str(ROOT / "bench" / "raw_server_list.py"), str(work / "clouds.yaml"), *clouds],
                self.base_env,
            ),
        }

    def inventory(self, path, **env):
        return (
            ["ansible-inventory", "-i", str(path), "--list", "--output", str(self.work / "out.json")],
            {**self.base_env, **env},
        )

    def run(self, variant):
        cmd, env = self.commands[variant]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"bench: {variant} failed ({proc.returncode}): {proc.stderr[-2000:]}")
        return elapsed, proc

    def hosts_of(self, variant):
        self.run(variant)
        data = json.loads((self.work / "out.json").read_text())
        return len(data.get("_meta", {}).get("hostvars", {})), data


def measure(runner, reps, expected):
    # sanity: every variant sees every server; the static inventory is built from ours
    count, listing = runner.hosts_of("ours-cold")
    (runner.work / "static.yml").write_text(yaml.safe_dump(static_inventory(listing), default_flow_style=False))
    for variant in ("ours-cached", "os-cloud", "static"):
        seen, _ = runner.hosts_of(variant)
        log(f"{variant}: {seen} hosts")
        if seen < expected:
            raise SystemExit(f"bench: {variant} lists {seen} hosts, expected {expected}")
    _, proc = runner.run("raw-list")
    log(f"ours-cold: {count} hosts; raw-list: {proc.stdout.strip()} servers")

    variants = ["ours-cold", "ours-cached", "os-cloud", "static", "raw-list"]
    times = {v: [] for v in variants}
    for rep in range(reps):
        order = variants[rep % len(variants) :] + variants[: rep % len(variants)]  # rotate: no variant always first
        for variant in order:
            times[variant].append(runner.run(variant)[0])
        log(f"rep {rep + 1}/{reps}: " + ", ".join(f"{v} {times[v][-1]:.2f}s" for v in variants))
    times["floor"] = [s + r for s, r in zip(times["static"], times["raw-list"], strict=True)]
    return times


def report(times, servers, clouds):
    med = {v: statistics.median(t) for v, t in times.items()}
    print()
    reps = len(times["static"])
    print(f"ansible-inventory --list, {servers} servers in {clouds} clouds, {reps} interleaved repetitions")
    print(f"{'variant':<12} {'median':>8} {'min':>8} {'max':>8}")
    for variant, values in times.items():
        print(f"{variant:<12} {med[variant]:>7.2f}s {min(values):>7.2f}s {max(values):>7.2f}s")
    print()
    ratios = [
        (
            "os-cloud / ours-cold",
            med["os-cloud"] / med["ours-cold"],
            ">= 2.0",
            med["os-cloud"] / med["ours-cold"] >= 2.0,
        ),
        ("ours-cold / floor", med["ours-cold"] / med["floor"], "<= 1.5", med["ours-cold"] / med["floor"] <= 1.5),
        (
            "ours-cached / static",
            med["ours-cached"] / med["static"],
            "<= 1.2",
            med["ours-cached"] / med["static"] <= 1.2,
        ),
    ]
    for label, value, target, met in ratios:
        print(f"{label:<22} {value:5.2f}   target {target}   {'met' if met else 'NOT met'}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=500)
    parser.add_argument("--clouds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--prefix", default="monoscape-bench")
    parser.add_argument("--keep", action="store_true", help="keep the servers for a later run")
    parser.add_argument("--delete", action="store_true", help="only delete what an earlier --keep run left")
    args = parser.parse_args()

    env = dict(os.environ)
    lab = lab_env()
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '')}"
    os.environ["OS_CLIENT_CONFIG_FILE"] = lab["OS_CLIENT_CONFIG_FILE"]
    admin = openstack.connect(cloud=lab["OS_CLOUD"])
    auth_url = admin.config.config["auth"]["auth_url"]
    openstack_cloud_collection()
    fleet = Fleet(admin, args.prefix, args.clouds, args.servers)
    if args.delete:
        fleet.delete()
        return
    started = time.monotonic()
    log(f"ensuring {args.servers} servers in AZ {AZ} over {args.clouds} projects")
    fleet.ensure()
    log(f"servers ready in {time.monotonic() - started:.0f}s")
    try:
        with tempfile.TemporaryDirectory(prefix="monoscape-bench-") as tmp:
            work = pathlib.Path(tmp)
            clouds = write_configs(work, fleet, auth_url)
            runner = Runner(work, clouds, env)
            times = measure(runner, args.reps, args.servers)
            report(times, args.servers, args.clouds)
    finally:
        if not args.keep:
            fleet.delete()


if __name__ == "__main__":
    main()
