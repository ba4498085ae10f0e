"""The floor of the inventory benchmark: one token and one detailed server-list
call per cloud, in parallel, with nothing but keystoneauth - what any inventory
of these clouds must at least do.

usage: raw_server_list.py CLOUDS_YAML CLOUD...   (prints the number of servers)
"""

import sys
from concurrent.futures import ThreadPoolExecutor

import yaml
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3


def list_servers(entry):
    session = ks_session.Session(auth=v3.Password(**entry["auth"]))
    endpoint = session.get_endpoint(service_type="compute", interface="public", region_name=entry.get("region_name"))
    url, servers = endpoint.rstrip("/") + "/servers/detail", []
    while url:
        body = session.get(url).json()
        servers += body["servers"]
        url = next((link["href"] for link in body.get("servers_links", []) if link["rel"] == "next"), None)
    return len(servers)


def main(argv):
    with open(argv[1]) as handle:
        clouds = yaml.safe_load(handle)["clouds"]
    with ThreadPoolExecutor(len(argv) - 2) as pool:
        counts = list(pool.map(list_servers, [clouds[name] for name in argv[2:]]))
    print(sum(counts))


if __name__ == "__main__":
    main(sys.argv)
