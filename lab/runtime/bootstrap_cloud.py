"""Bootstrap what the lab needs through the APIs (run by labctl in the lab venv).

  identity   service project, roles, service users, catalog (needs Keystone only)
  resources  flavors, shared tenant network, the external network + a router
             (the lab-network agent makes them real), the image `debian-12`,
             availability zones (aggregates)

Idempotent: every object is looked up first. One JSON line per change on stdout.
usage: bootstrap_cloud.py identity|resources --secrets FILE [--image REF --image-id ID --cidr CIDR --public-cidr CIDR]
"""

import argparse
import ipaddress
import json
import sys
import time

import openstack

KEYSTONE = "http://127.0.0.1:5000/v3"
ENDPOINTS = {
    # service user: (service type, URL)
    "glance": ("image", "http://127.0.0.1:9292"),
    "placement": ("placement", "http://127.0.0.1:8778"),
    "nova": ("compute", "http://127.0.0.1:8774/v2.1"),
    "neutron": ("network", "http://127.0.0.1:9696"),
}
ROLES = ("admin", "member", "reader", "manager", "service")
FLAVORS = (
    # name, RAM MiB, vCPUs, disk GiB: small enough for a 2-core machine
    ("m1.tiny", 256, 1, 1),
    ("m1.small", 512, 1, 5),
    ("m1.medium", 1024, 2, 10),
)
AGGREGATES = (("lab-podman", "lab-podman", "nova"), ("lab-fake", "lab-fake", "fake"))
IMAGE_NAME = "debian-12"
IMAGE_PROPERTY = "monoscape_lab_podman_image"
MANIFEST_KIND = "monoscape-lab-podman-image/1"
# The external network (--public-cidr, a /24): the host holds its first address (the
# lab-network agent's bridge), routers NAT behind it and floating IPs come from the
# pool .10-.200; the addresses above the pool are left for test namespaces acting as
# other machines on the external network.
POOL = (10, 200)


T0 = time.monotonic()


def changed(kind, name, **extra):
    print(json.dumps({"changed": kind, "name": name, "t": round(time.monotonic() - T0, 1), **extra}), flush=True)


def connect(secrets):
    return openstack.connect(
        auth_url=KEYSTONE,
        username="admin",
        password=secrets["admin"],
        project_name="admin",
        user_domain_name="Default",
        project_domain_name="Default",
        region_name="RegionOne",
        identity_api_version="3",
    )


def identity(conn, secrets):
    idc = conn.identity
    service = idc.find_project("service", domain_id="default")
    if service is None:
        service = idc.create_project(name="service", domain_id="default", description="OpenStack services")
        changed("project", "service")
    roles = {}
    for name in ROLES:
        roles[name] = idc.find_role(name)
        if roles[name] is None:
            roles[name] = idc.create_role(name=name)
            changed("role", name)
    for user_name in ENDPOINTS:
        user = idc.find_user(user_name, domain_id="default")
        if user is None:
            user = idc.create_user(
                name=user_name, password=secrets[user_name], domain_id="default", default_project_id=service.id
            )
            changed("user", user_name)
        for role in ("admin", "service"):
            if not idc.validate_user_has_project_role(service, user, roles[role]):
                idc.assign_project_role_to_user(service, user, roles[role])
    for user_name, (service_type, url) in ENDPOINTS.items():
        svc = next(iter(idc.services(type=service_type)), None)
        if svc is None:
            svc = idc.create_service(name=user_name, type=service_type, is_enabled=True)
            changed("service", user_name)
        have = {e.interface for e in idc.endpoints(service_id=svc.id)}
        for interface in ("public", "internal", "admin"):
            if interface not in have:
                idc.create_endpoint(service_id=svc.id, interface=interface, url=url, region_id="RegionOne")
                changed("endpoint", f"{user_name}/{interface}")


def flavors(conn):
    for name, ram, vcpus, disk in FLAVORS:
        if conn.compute.find_flavor(name, ignore_missing=True) is None:
            conn.compute.create_flavor(name=name, ram=ram, vcpus=vcpus, disk=disk, is_public=True)
            changed("flavor", name)


def public_layout(cidr):
    """(gateway, allocation pool) of the external /24."""
    net = ipaddress.ip_network(cidr)
    if net.prefixlen != 24 or net.version != 4:
        raise SystemExit(f"the external network must be an IPv4 /24, not {cidr}")
    return str(net[1]), {"start": str(net[POOL[0]]), "end": str(net[POOL[1]])}


def networks(conn, cidr, public_cidr):
    net = conn.network.find_network("private")
    if net is None:
        net = conn.network.create_network(name="private", is_shared=True, description="lab tenant network")
        changed("network", "private")
    if conn.network.find_subnet("private-subnet") is None:
        gateway = str(next(ipaddress.ip_network(cidr).hosts()))
        conn.network.create_subnet(
            name="private-subnet", network_id=net.id, ip_version=4, cidr=cidr, gateway_ip=gateway, is_dhcp_enabled=False
        )
        changed("subnet", "private-subnet", cidr=cidr)
    public = conn.network.find_network("public")
    if public is None:
        public = conn.network.create_network(
            name="public",
            is_router_external=True,
            provider_network_type="flat",
            provider_physical_network="public",
            description="external network: the lab host is on it (first address), floating IPs route",
        )
        changed("network", "public")
    if conn.network.find_subnet("public-subnet") is None:
        gateway, pool = public_layout(public_cidr)
        conn.network.create_subnet(
            name="public-subnet",
            network_id=public.id,
            ip_version=4,
            cidr=public_cidr,
            gateway_ip=gateway,
            allocation_pools=[pool],
            is_dhcp_enabled=False,
        )
        changed("subnet", "public-subnet", cidr=public_cidr)
    router = conn.network.find_router("lab-router")
    if router is None:
        router = conn.network.create_router(name="lab-router", external_gateway_info={"network_id": public.id})
        subnet = conn.network.find_subnet("private-subnet")
        conn.network.add_interface_to_router(router, subnet_id=subnet.id)
        changed("router", "lab-router")


def image(conn, ref, image_id):
    """`debian-12` maps to the podman image `ref` through a small manifest (the
    image data) that the lab's compute driver reads."""
    current = list(conn.image.images(name=IMAGE_NAME, owner=conn.current_project_id))
    keep = [i for i in current if i.properties.get(IMAGE_PROPERTY) == ref and i.status == "active"]
    if not keep:
        manifest = json.dumps({"kind": MANIFEST_KIND, "podman_image": ref, "podman_image_id": image_id}).encode()
        conn.image.create_image(
            name=IMAGE_NAME,
            data=manifest,
            disk_format="raw",
            container_format="bare",
            visibility="public",
            allow_duplicates=True,
            os_distro="debian",
            os_version="12",
            **{IMAGE_PROPERTY: ref, "hw_architecture": "x86_64"},
        )
        changed("image", IMAGE_NAME, podman_image=ref)
    for old in current:
        if old not in keep[:1]:
            conn.image.delete_image(old)
            changed("image-deleted", old.id)


def aggregates(conn, timeout=300):
    """Once both nova-compute services have registered: one aggregate (and
    availability zone) per compute host."""
    deadline = time.monotonic() + timeout
    wanted = {host for _, host, _ in AGGREGATES}
    while True:
        hosts = {s.host for s in conn.compute.services(binary="nova-compute")}
        if wanted <= hosts:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"compute services {sorted(wanted - hosts)} did not register within {timeout}s")
        time.sleep(1)
    for name, host, zone in AGGREGATES:
        agg = next((a for a in conn.compute.aggregates() if a.name == name), None)
        if agg is None:
            agg = conn.compute.create_aggregate(name=name, availability_zone=zone)
            changed("aggregate", name, zone=zone)
        if host not in (agg.hosts or []):
            conn.compute.add_host_to_aggregate(agg, host)
            changed("aggregate-host", name, host=host)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=("identity", "resources"))
    parser.add_argument("--secrets", required=True)
    parser.add_argument("--image")
    parser.add_argument("--image-id")
    parser.add_argument("--cidr")
    parser.add_argument("--public-cidr")
    args = parser.parse_args(argv)
    with open(args.secrets) as f:
        secrets = json.load(f)
    conn = connect(secrets)
    if args.what == "identity":
        identity(conn, secrets)
    else:
        flavors(conn)
        networks(conn, args.cidr, args.public_cidr)
        image(conn, args.image, args.image_id)
        aggregates(conn)
    print(json.dumps({"ok": args.what}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
