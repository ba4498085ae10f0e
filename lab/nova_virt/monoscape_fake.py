"""Nova's fake compute driver, made fit for a long-running lab (installed by
labctl as nova/virt/monoscape_fake.py; compute_driver =
monoscape_fake.PersistentFakeDriver).

* stable node identity ($state_path/compute_id), from FakeDriverWithoutFakeNodes:
  nova-compute can be restarted (stock FakeDriver gets a new node uuid per process);
* the fake instances are saved to $state_path/fake-instances.json and loaded at
  start, so servers of the fake availability zone survive `labctl down`/`up`;
* snapshot() uploads a small payload so the snapshot image goes `active` (stock
  FakeDriver never uploads: the image stays `queued`).
"""

import io
import json
import os
import threading

from nova import exception
from nova.compute import power_state, task_states
from nova.conf import CONF
from nova.image import glance as nova_glance
from nova.virt import fake

PAYLOAD = b"\0" * 4096


def snapshot_image_meta(instance, extra_properties=None):
    return {
        "status": "active",
        "disk_format": "raw",
        "container_format": "bare",
        "properties": {
            "image_location": "snapshot",
            "image_state": "available",
            "owner_id": instance.project_id,
            **(extra_properties or {}),
        },
    }


class SnapshotFakeDriver(fake.FakeDriverWithoutFakeNodes):
    def snapshot(self, context, instance, image_id, update_task_state):
        if instance.uuid not in self.instances:
            raise exception.InstanceNotRunning(instance_id=instance.uuid)
        update_task_state(task_state=task_states.IMAGE_PENDING_UPLOAD)
        update_task_state(task_state=task_states.IMAGE_UPLOADING, expected_state=task_states.IMAGE_PENDING_UPLOAD)
        nova_glance.API().update(
            context, image_id, snapshot_image_meta(instance), data=io.BytesIO(PAYLOAD), purge_props=False
        )


class PersistentFakeDriver(SnapshotFakeDriver):
    _save_lock = threading.Lock()

    def __init__(self, virtapi, read_only=False):
        super().__init__(virtapi, read_only)
        self._state_file = os.path.join(CONF.state_path, "fake-instances.json")

    def init_host(self, host):
        super().init_host(host)
        try:
            with open(self._state_file) as f:
                saved = json.load(f)
        except FileNotFoundError:
            saved = {}
        for uuid, (name, state) in saved.items():
            self.instances[uuid] = fake.FakeInstance(name, state, uuid)

    def _save(self):
        with self._save_lock:
            data = {uuid: (i.name, i.state) for uuid, i in self.instances.items()}
            tmp = self._state_file + ".tmp"
            with open(tmp, "w") as f:
                json.dump(data, f)
            os.replace(tmp, self._state_file)

    def spawn(self, *args, **kwargs):
        super().spawn(*args, **kwargs)
        self._save()

    def destroy(self, *args, **kwargs):
        super().destroy(*args, **kwargs)
        self._save()

    def power_off(self, instance, timeout=0, retry_interval=0):
        super().power_off(instance, timeout, retry_interval)
        self._save()

    def power_on(self, *args, **kwargs):
        super().power_on(*args, **kwargs)
        self._save()

    def resume_state_on_host_boot(self, context, instance, network_info, share_info, block_device_info=None):
        if instance.uuid in self.instances:
            self.instances[instance.uuid].state = power_state.RUNNING
            self._save()
