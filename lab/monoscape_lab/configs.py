"""Configuration files of the lab's services, rendered from Settings.

`render(settings, secrets)` returns {relative path under etc/: text}; nothing
here touches the disk, so it is unit-tested as is.
"""

import json

from .settings import (
    ADMIN_CLOUD,
    CONTROL_HOST,
    DB_PASSWORD,
    DB_USER,
    FAKE_HOST,
    HOST,
    PODMAN_AZ,
    PODMAN_HOST,
    PORTS,
    RABBIT_URL,
    REGION,
)

KEYSTONE_URL = f"http://{HOST}:{PORTS['keystone']}"
ENDPOINTS = {
    # service user, service type, catalog URL
    "glance": ("image", f"http://{HOST}:{PORTS['glance-api']}"),
    "placement": ("placement", f"http://{HOST}:{PORTS['placement-api']}"),
    "nova": ("compute", f"http://{HOST}:{PORTS['nova-api']}/v2.1"),
    "neutron": ("network", f"http://{HOST}:{PORTS['neutron-api']}"),
}


def ini(sections):
    """{section: {key: value}} -> INI text (values rendered as given)."""
    out = []
    for section, values in sections.items():
        out.append(f"[{section}]")
        out.extend(f"{key} = {value}" for key, value in values.items())
        out.append("")
    return "\n".join(out)


def db_url(name):
    return f"mysql+pymysql://{DB_USER}:{DB_PASSWORD}@{HOST}:{PORTS['mariadb']}/{name}?charset=utf8"


def service_auth(user, password):
    return {
        "auth_url": KEYSTONE_URL,
        "auth_type": "password",
        "project_domain_name": "Default",
        "user_domain_name": "Default",
        "project_name": "service",
        "username": user,
        "password": password,
        "region_name": REGION,
    }


def authtoken(user, password):
    return {
        "www_authenticate_uri": KEYSTONE_URL,
        "memcached_servers": f"{HOST}:{PORTS['memcached']}",
        "service_token_roles_required": "true",
        **service_auth(user, password),
    }


def mariadb_cnf(s):
    return ini(
        {
            "mysqld": {
                "datadir": s.data / "mysql",
                "socket": s.run / "mysqld.sock",
                "pid-file": s.run / "mysqld.pid",
                "bind-address": HOST,
                "port": PORTS["mariadb"],
                "user": "root",
                "log-error": s.log("mariadb"),
                "skip-name-resolve": "1",
                "max_connections": "500",
                "innodb_buffer_pool_size": "128M",
                "innodb_log_file_size": "32M",
                "innodb_flush_log_at_trx_commit": "0",
                "innodb_doublewrite": "0",
                "sync_binlog": "0",
                "character-set-server": "utf8mb4",
                "collation-server": "utf8mb4_general_ci",
            },
            "client": {"socket": s.run / "mysqld.sock", "user": "root"},
        }
    )


def keystone_conf(s):
    return ini(
        {
            "DEFAULT": {"log_file": s.log("keystone")},
            "database": {"connection": db_url("keystone")},
            "token": {"provider": "fernet"},
            "fernet_tokens": {"key_repository": s.etc / "keystone" / "fernet-keys"},
            "fernet_receipts": {"key_repository": s.etc / "keystone" / "fernet-keys"},
            "credential": {"key_repository": s.etc / "keystone" / "credential-keys"},
            "cache": {
                "enabled": "true",
                "backend": "dogpile.cache.pymemcache",
                "memcache_servers": f"{HOST}:{PORTS['memcached']}",
            },
        }
    )


def glance_conf(s, pw):
    return ini(
        {
            "DEFAULT": {"log_file": s.log("glance-api"), "enabled_backends": "file1:file"},
            "database": {"connection": db_url("glance")},
            "glance_store": {"default_backend": "file1"},
            "file1": {"filesystem_store_datadir": s.data / "glance" / "images"},
            "os_glance_staging_store": {"filesystem_store_datadir": s.data / "glance" / "staging"},
            "os_glance_tasks_store": {"filesystem_store_datadir": s.data / "glance" / "tasks"},
            "paste_deploy": {"flavor": "keystone", "config_file": s.etc / "glance" / "glance-api-paste.ini"},
            "oslo_concurrency": {"lock_path": s.data / "glance" / "locks"},
            "keystone_authtoken": authtoken("glance", pw["glance"]),
        }
    )


def placement_conf(s, pw):
    return ini(
        {
            "DEFAULT": {"log_file": s.log("placement-api")},
            "placement_database": {"connection": db_url("placement")},
            "api": {"auth_strategy": "keystone"},
            "keystone_authtoken": authtoken("placement", pw["placement"]),
        }
    )


def nova_common(s, pw):
    return {
        "DEFAULT": {
            "transport_url": RABBIT_URL,
            "my_ip": HOST,
            "default_schedule_zone": PODMAN_AZ,
            "vif_plugging_is_fatal": "false",
            "vif_plugging_timeout": "0",
            "heal_instance_info_cache_interval": "-1",
            "sync_power_state_interval": "30",
            "resume_guests_state_on_host_boot": "true",
            "instance_usage_audit": "false",
            "graceful_shutdown_timeout": "5",
            # periodic tasks (the scheduler's host discovery) start at once, not after up to 60 s
            "periodic_fuzzy_delay": "0",
        },
        "image_cache": {"manager_interval": "300"},
        "api": {"auth_strategy": "keystone"},
        "wsgi": {"api_paste_config": s.etc / "nova" / "api-paste.ini"},
        "conductor": {"workers": "1"},
        "scheduler": {"workers": "1", "discover_hosts_in_cells_interval": "2"},
        "quota": dict.fromkeys(
            (
                "instances",
                "cores",
                "ram",
                "key_pairs",
                "metadata_items",
                "server_groups",
                "server_group_members",
                "injected_files",
            ),
            "-1",
        ),
        "oslo_concurrency": {"lock_path": s.data / "nova" / "locks"},
        "oslo_messaging_notifications": {"driver": "noop"},
        "vnc": {"enabled": "false"},
        "spice": {"enabled": "false"},
        "glance": {"region_name": REGION},
        "cinder": {"os_region_name": REGION},
        "keystone_authtoken": authtoken("nova", pw["nova"]),
        "service_user": {"send_service_user_token": "true", **service_auth("nova", pw["nova"])},
        "placement": service_auth("placement", pw["placement"]),
        "neutron": service_auth("neutron", pw["neutron"]),
    }


def nova_conf(s, pw):
    """nova-api, conductor, scheduler (and nova-manage): with database access."""
    sections = nova_common(s, pw)
    sections["DEFAULT"] = {
        **sections["DEFAULT"],
        "host": CONTROL_HOST,
        "log_dir": s.logs,
        "state_path": s.data / "nova",
    }
    sections["api_database"] = {"connection": db_url("nova_api")}
    sections["database"] = {"connection": db_url("nova")}
    return ini(sections)


def nova_compute_conf(s, pw, host, driver, extra=None):
    """A nova-compute: no database sections (`No DB access allowed in nova-compute`)."""
    sections = nova_common(s, pw)
    sections["DEFAULT"] = {
        **sections["DEFAULT"],
        "host": host,
        "compute_driver": driver,
        "log_file": s.log(f"nova-compute-{host.removeprefix('lab-')}"),
        "state_path": s.data / host,
        "instances_path": s.data / host / "instances",
    }
    sections.update(extra or {})
    return ini(sections)


def neutron_conf(s, pw):
    return ini(
        {
            "DEFAULT": {
                "log_file": s.log("neutron-api"),
                "core_plugin": "ml2",
                "service_plugins": "router",
                "auth_strategy": "keystone",
                "transport_url": RABBIT_URL,
                "state_path": s.data / "neutron",
                "api_paste_config": s.etc / "neutron" / "api-paste.ini",
                "allow_overlapping_ips": "true",
                "notify_nova_on_port_status_changes": "true",
                "notify_nova_on_port_data_changes": "true",
                "dhcp_agent_notification": "false",
                "api_workers": "1",
                "rpc_workers": "0",
                "rpc_state_report_workers": "0",
            },
            "database": {"connection": db_url("neutron")},
            "quotas": {
                f"quota_{key}": "-1"
                for key in (
                    "network",
                    "subnet",
                    "port",
                    "security_group",
                    "security_group_rule",
                    "router",
                    "floatingip",
                )
            },
            "oslo_concurrency": {"lock_path": s.data / "neutron" / "locks"},
            "agent": {"root_helper": "true"},
            "keystone_authtoken": authtoken("neutron", pw["neutron"]),
            "nova": service_auth("nova", pw["nova"]),
            "placement": service_auth("placement", pw["placement"]),
        }
    )


def ml2_conf():
    return ini(
        {
            "ml2": {
                "type_drivers": "flat,vlan,vxlan,local",
                "tenant_network_types": "vxlan",
                # binds every port without agents (lab/neutron_ml2/monoscape_lab_ml2.py)
                "mechanism_drivers": "monoscape_lab",
                "extension_drivers": "port_security",
            },
            "ml2_type_vxlan": {"vni_ranges": "1:1000"},
            "ml2_type_flat": {"flat_networks": "public"},
            "ml2_type_vlan": {"network_vlan_ranges": "physnet1:100:200"},
            "securitygroup": {"enable_security_group": "true", "firewall_driver": "noop"},
        }
    )


def rabbitmq_conf():
    return (
        f"listeners.tcp.default = {HOST}:{PORTS['rabbitmq']}\n"
        "loopback_users = none\n"
        "default_user = guest\n"
        "default_pass = guest\n"
        "log.console = false\n"
    )


def admin_cloud(pw):
    return {
        "region_name": REGION,
        "identity_api_version": 3,
        "auth": {
            "auth_url": f"{KEYSTONE_URL}/v3",
            "username": "admin",
            "password": pw["admin"],
            "project_name": "admin",
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
    }


def clouds_yaml(pw):
    """JSON is YAML: no YAML library needed to write clouds.yaml."""
    return json.dumps({"clouds": {ADMIN_CLOUD: admin_cloud(pw)}}, indent=2) + "\n"


def podman_driver_section(s, cloud_id):
    return {
        "monoscape_podman": {
            "base_image": s.guest_image,
            "lab_dir": s.lab_dir,
            "cloud_id": cloud_id,
            "network_prefix": "monoscape-lab-",
            "ssh_wait": "60",
        }
    }


def lab_network(s):
    """Settings of the lab-network agent (monoscape_labnet): Neutron's database,
    the compute host whose ports it plugs, where it reports."""
    return (
        json.dumps(
            {
                "db": {
                    "host": HOST,
                    "port": PORTS["mariadb"],
                    "user": DB_USER,
                    "password": DB_PASSWORD,
                    "database": "neutron",
                },
                "podman_host": PODMAN_HOST,
                # the identity endpoint instances log in against (the self-service
                # dashboard on the controller): http://<external gateway>:5000
                "published_ports": [PORTS["keystone"]],
                "status_file": str(s.run / "lab-network.status"),
                "interval": 0.5,
                "resync": 30,
            },
            indent=2,
        )
        + "\n"
    )


def render(s, pw, venv_etc, cloud_id):
    """All config files of the lab: {path relative to etc/: text or (source path,)}."""
    return {
        "mariadb.cnf": mariadb_cnf(s),
        "rabbitmq/rabbitmq.conf": rabbitmq_conf(),
        "rabbitmq/enabled_plugins": "[].\n",
        "keystone/keystone.conf": keystone_conf(s),
        "glance/glance-api.conf": glance_conf(s, pw),
        "glance/glance-api-paste.ini": (venv_etc / "glance" / "glance-api-paste.ini",),
        "placement/placement.conf": placement_conf(s, pw),
        "nova/nova.conf": nova_conf(s, pw),
        "nova/nova-api.conf": ini({"DEFAULT": {"log_file": s.log("nova-api")}}),
        "nova/api-paste.ini": (venv_etc / "nova" / "api-paste.ini",),
        "nova/nova-compute-podman.conf": nova_compute_conf(
            s, pw, PODMAN_HOST, "monoscape_podman.PodmanDriver", podman_driver_section(s, cloud_id)
        ),
        "nova/nova-compute-fake.conf": nova_compute_conf(s, pw, FAKE_HOST, "monoscape_fake.PersistentFakeDriver"),
        "neutron/neutron.conf": neutron_conf(s, pw),
        "neutron/plugins/ml2/ml2_conf.ini": ml2_conf(),
        "neutron/api-paste.ini": (venv_etc / "neutron" / "api-paste.ini",),
        "lab-network.json": lab_network(s),
    }
