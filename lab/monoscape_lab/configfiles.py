"""The lab's configuration files on disk (configs.py renders them)."""

import base64
import os
import shutil

from . import configs


def write_configs(s, pw, cloud_id):
    """The services' configuration files (configs.render) and Keystone's key repositories under etc/."""
    venv_etc = s.venv / "etc"
    for rel, content in configs.render(s, pw, venv_etc, cloud_id).items():
        path = s.etc / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, tuple):
            shutil.copyfile(content[0], path)
        else:
            path.write_text(content)
        path.chmod(0o600)
    (s.etc / "rabbitmq" / "rabbitmq-env.conf").write_text("")
    # fernet keys for tokens and for credentials (EC2): keystone's repository format
    for repo in ("fernet-keys", "credential-keys"):
        d = s.etc / "keystone" / repo
        d.mkdir(parents=True, mode=0o700)
        for index in ("0", "1"):
            fd = os.open(d / index, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(base64.urlsafe_b64encode(os.urandom(32)).decode())


def write_clouds_yaml(s, pw):
    """The lab admin's clouds.yaml (0600)."""
    path = s.clouds_yaml
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(configs.clouds_yaml(pw))
    path.chmod(0o600)
