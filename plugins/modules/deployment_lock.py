#!/usr/bin/python
# Copyright: Monoscape developers
# Apache-2.0 (see galaxy.yml)
# The work is done by the action plugin of the same name (plugins/action/deployment_lock.py),
# on the control node: this file documents it.

DOCUMENTATION = r"""
module: deployment_lock
short_description: One run at a time - the deployment lock on the control node
description:
  - Takes the lock of a deployment for the running C(ansible-playbook) process, so that two runs never
    change one deployment at the same time. Every playbook of the bundle that changes something takes it
    before its first change (C(playbooks/lock.yml)).
  - The lock is a JSON file on the control node (mode 0600; its folder is made with mode 0700) naming
    the holder - the C(ansible-playbook) process of the run (its pid and its start time, so that a
    reused pid is not mistaken for the holder), the user, the machine, the playbooks given on the
    command line and when the run started.
  - "Re-entrant: a run that holds the lock takes it again without a change (C(site.yml) imports
    playbooks that each take it)."
  - Nothing releases the lock at the end of a run. It is stale once its process has ended (or the
    machine was restarted), and the next run takes it over.
  - A lock held by another run that still goes fails the task at once, with one line naming the holder
    (pid, playbooks, user, machine, start time) and the lock file; with O(wait) the task looks again
    every second until that run ends or the wait is over. A lock held on another machine (a shared home
    folder) or in another pid namespace cannot be checked and counts as held; the message says so.
  - The file is read and replaced under an C(flock) on its folder and written atomically (a temporary
    file renamed over it), so two runs that start together cannot both take it.
  - "The task always reports C(changed=false): the lock is the control node's bookkeeping, not a change
    to the deployment, and a re-run that changes nothing must report C(changed=0). RV(outcome) says
    what happened."
  - Check mode writes nothing (neither the lock file nor its folder) but still fails, or waits, when
    another run holds the lock.
version_added: 0.1.0
author: Monoscape developers
options:
  path:
    description:
      - The lock file on the control node. The bundle's playbooks use C(monoscape_lock_file), beside the
        deployment's state folder (not inside it - teardown deletes that folder while it holds the lock).
      - Missing folders are made (the last one with mode 0700), except in check mode.
    type: path
    required: true
  state:
    description:
      - C(present) takes the lock (or finds that this run holds it).
      - C(absent) releases it when this run holds it (the file is deleted). A lock that is free or stale is
        left as it is; one held by another run fails the task and is not touched.
    type: str
    choices: [absent, present]
    default: present
  wait:
    description:
      - Seconds to wait for another run holding the lock to end. C(0) fails at once.
      - The failure message tells the operator to re-run with C(-e monoscape_lock_wait=SECONDS), the
        variable the bundle's playbooks pass here.
    type: int
    default: 0
attributes:
  action:
    support: full
    details: Runs on the control node in the Ansible worker process; nothing is sent to the target host.
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
    details: Needs Linux's C(/proc) on the control node.
notes:
  - The holder is the C(ansible-playbook) process, which ansible-core forks its workers from. A run
    started from inside another run (C(ansible-playbook) in a C(command) task) is a run of its own, which
    does not share the outer run's lock.
  - To take a lock by hand that a run on another machine left behind, delete the file after making sure
    that run is over.
seealso:
  - module: monoscape.paas.os_known_hosts
"""

EXAMPLES = r"""
- name: Take the deployment lock (fail at once if another run holds it)
  monoscape.paas.deployment_lock:
    path: ~/.config/monoscape/acme.lock

- name: Take it, waiting up to 10 minutes for another run to end
  monoscape.paas.deployment_lock:
    path: ~/.config/monoscape/acme.lock
    wait: 600

- name: Release it (the last task of a teardown)
  monoscape.paas.deployment_lock:
    path: ~/.config/monoscape/acme.lock
    state: absent
"""

RETURN = r"""
outcome:
  description:
    - What the task did (would do, in check mode). C(taken) - the lock was free and is now this run's;
      C(taken_over) - it was stale (its run had ended) and is now this run's; C(held) - this run held it
      already; C(released) - this run's lock was deleted; C(not_held) - nothing to release.
  returned: success
  type: str
  sample: taken_over
path:
  description: The lock file.
  returned: always
  type: str
  sample: /home/alice/.config/monoscape/acme.lock
holder:
  description:
    - The record in the lock file - the run that holds the lock (this one, or the other run when the task
      failed).
  returned: when the lock is held
  type: dict
  contains:
    pid:
      description: pid of the C(ansible-playbook) process of the run.
      type: int
      sample: 4242
    start_ticks:
      description: Its start time, in clock ticks after boot (C(/proc/<pid>/stat) field 22).
      type: int
      sample: 9350123
    boot_id:
      description: The machine's boot id (C(/proc/sys/kernel/random/boot_id)).
      type: str
      sample: 0b3c7c1e-5f4d-4a52-9d3e-7b0e4a0c9c61
    pid_namespace:
      description: The pid namespace of the run.
      type: str
      sample: "pid:[4026531836]"
    host:
      description: Host name of the control node.
      type: str
      sample: ctl-1
    user:
      description: The user running it.
      type: str
      sample: alice
    playbooks:
      description: The playbooks given to C(ansible-playbook), absolute.
      type: list
      elements: str
      sample: [/srv/monoscape/playbooks/site.yml]
    started_at:
      description: When the run's process started (UTC).
      type: str
      sample: "2025-12-06T19:50:00Z"
    format:
      description: Version of the record's layout.
      type: int
      sample: 1
previous:
  description: The record of the stale lock that was taken over.
  returned: when RV(outcome=taken_over)
  type: dict
  sample: {pid: 4100, playbooks: [/srv/monoscape/playbooks/deploy_app.yml], started_at: "2025-12-06T18:02:11Z"}
waited:
  description: Seconds spent waiting for another run.
  returned: success
  type: int
  sample: 0
msg:
  description: What happened, in a sentence (for a failure, the holder and how to wait).
  returned: always
  type: str
  sample: >-
    took over the deployment lock /home/alice/.config/monoscape/acme.lock from pid 4100 (ansible-playbook
    /srv/monoscape/playbooks/deploy_app.yml), user alice on ctl-1, started 2025-12-06T18:02:11Z (2 h 3 min ago):
    pid 4100 has ended
"""
