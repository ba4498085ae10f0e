"""Re-run cost (`make bench-site`; a measurement, not a test), in two phases.

The deployment's life (issue #16): the demo deployment on the lab torn down, then
its first `site.yml` (node image built), a no-op re-run, a scale-out by one node
and the scale-in, each timed and set against the targets (first <= 150 s, no-op
<= 10 % of the first with changed=0, scale-out <= 45 s). --shared-only skips it,
--runbook-only does only that.

A shared project: the demo deployment (made first when it is not there), then the
no-op `site.yml` and `status.yml` (alternating, --reps times each), first with
the project as it is, then with the other servers added:

  none    the project holds only the deployment's servers
  300     the same project also holds 300 servers without Monoscape metadata
          (another team's, in the lab's fake-driver availability zone)

Prints the medians and the ratio 300/none of each playbook against the target
(<= 1.15x), and the `changed` count of every site.yml (0 expected); asserts
nothing about absolute times. The 300 servers are deleted at the end unless --keep.
Every measured run's task timings (callback monoscape.paas.task_timings) go to
build/logs/bench-site/; the slowest tasks of the first no-op site.yml are printed.
"""

import argparse
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import time

import openstack
import openstack.config
import openstack.connection
import yaml
from inventory_bench import AZ, BATCH, lab_env, log  # the sibling benchmark (bench/ is on sys.path)

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET = 1.15
PREFIX = "bench-other-"
NODES = 2  # inventory/lab's monoscape_node_count
STATE = pathlib.Path("~/.config/monoscape/monoscape").expanduser()  # the lab deployment's state folder


TIMINGS = ROOT / "build" / "logs" / "bench-site"  # each run's task timings (callback task_timings)


def playbook(name, env, timings=None, extra=()):
    """(seconds, changed) of one ansible-playbook run on the lab inventory; with
    `timings` (a file name), every task's wall time is written there as JSON."""
    if timings:
        TIMINGS.mkdir(parents=True, exist_ok=True)
        env = dict(
            env,
            ANSIBLE_CALLBACKS_ENABLED="monoscape.paas.task_timings",
            MONOSCAPE_TASK_TIMINGS=str(TIMINGS / timings),
            MONOSCAPE_TASK_TIMINGS_TOP="0",
        )
    started = time.monotonic()
    proc = subprocess.run(
        ["ansible-playbook", "-i", "inventory/lab", f"playbooks/{name}", *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    if timings:
        (TIMINGS / timings).with_suffix(".log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.stdout.write(proc.stdout[-6000:])
        raise SystemExit(f"bench: {name} failed (rc={proc.returncode})")
    changed = sum(int(n) for n in re.findall(r"changed=(\d+)", proc.stdout.split("PLAY RECAP")[-1]))
    return elapsed, changed


def tenant_connection():
    """The deployment's tenant user, from its 0600 clouds.yaml (written by the tenant step)."""
    path = STATE / "clouds.yaml"
    (name,) = yaml.safe_load(path.read_text())["clouds"]
    region = openstack.config.OpenStackConfig(config_files=[str(path)]).get_one(cloud=name)
    return openstack.connection.Connection(config=region)


class Others:
    """300 servers of another team in the deployment's project (no Monoscape metadata)."""

    def __init__(self, admin, tenant, count):
        self.admin, self.tenant, self.count = admin, tenant, count

    def listed(self):
        return [s for s in self.tenant.compute.servers() if s.name.startswith(PREFIX)]

    def ensure(self):
        project_id = self.tenant.current_project_id
        self.admin.set_compute_quotas(project_id, instances=-1, cores=-1, ram=-1)
        self.admin.set_network_quotas(project_id, port=-1)
        image = self.admin.image.find_image("debian-12", ignore_missing=False)
        flavor = min(self.admin.compute.flavors(), key=lambda f: (f.ram, f.vcpus))
        network = self.admin.network.find_network("private", ignore_missing=False)
        have = len(self.listed())
        while have < self.count:
            batch = min(BATCH, self.count - have)
            self.tenant.compute.create_server(
                name=f"{PREFIX}{have:04d}",
                image_id=image.id,
                flavor_id=flavor.id,
                networks=[{"uuid": network.id}],
                availability_zone=AZ,
                min_count=batch,
                max_count=batch,
            )
            have += batch
            log(f"{have}/{self.count} other servers requested")
        deadline = time.monotonic() + 3600
        while True:
            states = {}
            for server in self.listed():
                states[server.status] = states.get(server.status, 0) + 1
            if states.get("ACTIVE", 0) >= self.count:
                log(f"{self.count} other servers ACTIVE")
                return
            if states.get("ERROR") or time.monotonic() > deadline:
                raise SystemExit(f"bench: other servers not ACTIVE: {states}")
            time.sleep(10)

    def delete(self):
        for server in self.listed():
            self.tenant.compute.delete_server(server.id, ignore_missing=True)
        while self.listed():
            time.sleep(5)
        log("other servers deleted")


def runbook_phase(env):
    """The demo deployment's life, in one go: torn down, first site.yml (the node image
    built too), no-op re-run, scale-out by one node, scale-in; prints each time and the
    ratios against issue #16's targets. Returns the no-op run's timings file."""
    log("teardown.yml (so that the first site.yml is a first)")
    playbook("teardown.yml", env)
    steps = [
        ("first", "site.yml", ()),
        ("no-op", "site.yml", ()),
        ("scale-out", "scale.yml", ("-e", f"monoscape_node_count={NODES + 1}")),
        ("scale-in", "scale.yml", ("-e", f"monoscape_node_count={NODES}")),
    ]
    took = {}
    for label, name, extra in steps:
        took[label] = playbook(name, env, timings=f"runbook-{label}.json", extra=extra)
        log(f"{label:<9} {name:<9} {took[label][0]:6.1f} s  changed={took[label][1]}")
    first, noop = took["first"][0], took["no-op"][0]
    print()
    print("the deployment's life (issue #16's targets)")
    print(f"  first site.yml   {first:6.1f} s   (target <= 150 s: {'met' if first <= 150 else 'NOT met'})")
    print(
        f"  no-op site.yml   {noop:6.1f} s   {100 * noop / first:4.1f} % of the first, changed={took['no-op'][1]}"
        f"   (target <= 10 %, changed=0: {'met' if noop <= 0.1 * first and took['no-op'][1] == 0 else 'NOT met'})"
    )
    out = took["scale-out"][0]
    print(f"  scale-out by one {out:6.1f} s   (target <= 45 s: {'met' if out <= 45 else 'NOT met'})")
    print(f"  scale-in by one  {took['scale-in'][0]:6.1f} s")
    slowest("runbook-no-op.json")


def measure(env, reps, label, times, changes):
    for rep in range(reps):
        for name in ("site.yml", "status.yml"):
            elapsed, changed = playbook(name, env, timings=f"{label}-{name[:-4]}-{rep + 1}.json")
            times.setdefault((name, label), []).append(elapsed)
            if name == "site.yml":
                changes.append((label, changed))
            log(f"{label:>4} {name:<10} rep {rep + 1}: {elapsed:6.1f} s  changed={changed}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", type=int, default=300)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the other servers for a later run")
    parser.add_argument("--shared-only", action="store_true", help="only the shared-project measurement")
    parser.add_argument("--runbook-only", action="store_true", help="only the deployment's life")
    args = parser.parse_args()

    lab = lab_env()
    # the playbooks find the lab's admin cloud through inventory/lab; an OS_CLIENT_CONFIG_FILE
    # in their environment would be read before the tenant's clouds.yaml (the inventory
    # plugin, as openstacksdk does) and hide the deployment's servers
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "ANSIBLE_"))}
    env.update({k: v for k, v in lab.items() if not k.startswith("OS_")})
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{env['PATH']}"
    env.setdefault("CONTAINERS_CONF", str(pathlib.Path("~/.cache/monoscape/containers.conf").expanduser()))
    if not args.shared_only:
        runbook_phase(env)
    if args.runbook_only:
        return
    log("site.yml once (makes the demo deployment, or checks it is there)")
    playbook("site.yml", env)
    # the lab's admin from the lab's clouds.yaml (this process's environment does not name it)
    lab_config = openstack.config.OpenStackConfig(config_files=[lab["OS_CLIENT_CONFIG_FILE"]])
    admin = openstack.connection.Connection(config=lab_config.get_one(cloud=lab["OS_CLOUD"]))
    others = Others(admin, tenant_connection(), args.servers)
    others.delete()  # a kept set from an earlier run is measured with, not before
    times, changes = {}, []
    measure(env, args.reps, "none", times, changes)
    others.ensure()
    try:
        measure(env, args.reps, str(args.servers), times, changes)
    finally:
        if not args.keep:
            others.delete()

    print()
    print(f"shared project: no-op runs with {args.servers} other servers vs none (median of {args.reps})")
    verdicts = []
    for name in ("site.yml", "status.yml"):
        none = statistics.median(times[(name, "none")])
        many = statistics.median(times[(name, str(args.servers))])
        ratio = many / none
        verdicts.append(ratio <= TARGET)
        print(
            f"  {name:<10} none {none:6.1f} s   {args.servers} others {many:6.1f} s   ratio {ratio:.2f}x"
            f"  (target <= {TARGET}x: {'met' if ratio <= TARGET else 'NOT met'})"
        )
    print(f"  site.yml changed: {', '.join(f'{label}={n}' for label, n in changes)}")
    print(f"  verdict: {'targets met' if all(verdicts) else 'a target is not met'}")
    slowest("none-site-1.json")


def slowest(timings, top=12):
    """Where the time of one measured run went: its slowest tasks and their share."""
    document = json.loads((TIMINGS / timings).read_text())
    print(f"\nthe {top} slowest tasks of {timings[:-5]} ({document['run_s']:.1f} s; all in {TIMINGS}):")
    for task in sorted(document["tasks"], key=lambda t: t["seconds"], reverse=True)[:top]:
        share = 100 * task["seconds"] / document["run_s"]
        print(f"  {task['seconds']:6.2f} s {share:4.1f} %  {task['play']} | {task['task']}")


if __name__ == "__main__":
    main()
