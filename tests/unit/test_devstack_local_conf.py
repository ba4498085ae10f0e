"""local.conf rendering (plugins/filter/devstack.py): localrc ordering by $VAR
references, cycle errors, quoting, services, plugins and meta-sections.

The ordering is also checked the way DevStack consumes it: the rendered
localrc section is evaluated by bash with `set -u`, so a reference before
its definition fails the test."""

import itertools
import random
import shutil
import subprocess

import pytest

from ansible_collections.monoscape.paas.plugins.filter.devstack import (
    DevstackLocalConfError,
    FilterModule,
    order_localrc,
    references,
    render_local_conf,
    shell_double_quote,
)

BASH = shutil.which("bash") or "/bin/bash"


def names(pairs):
    return [name for name, _ in pairs]


def assert_definitions_first(localrc, pairs):
    position = {name: index for index, (name, _) in enumerate(pairs)}
    assert set(position) == set(localrc)
    for name, value in localrc.items():
        for ref in references(value):
            if ref in localrc and ref != name:
                assert position[ref] < position[name], f"{ref} must come before {name}: {names(pairs)}"


def bash_eval(localrc_text, wanted):
    """Source the localrc section with bash -u and print the wanted variables."""
    section = localrc_text.split("\n\n")[0].split("\n", 1)[1]
    script = "set -eu\n" + section + "\n" + "".join(f'printf "%s\\n" "${name}"\n' for name in wanted)
    env = {"PATH": "/usr/bin:/bin"}
    proc = subprocess.run([BASH, "-c", script], capture_output=True, text=True, check=False, env=env)
    return proc.returncode, proc.stdout.splitlines(), proc.stderr


# --- references --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("$ADMIN_PASSWORD", {"ADMIN_PASSWORD"}),
        ("${DEST}/logs", {"DEST"}),
        ("${HOST_IP:-127.0.0.1}", {"HOST_IP"}),
        ("http://$SERVICE_HOST:$PORT/x", {"SERVICE_HOST", "PORT"}),
        ("literal", set()),
        (r"\$NOT_A_REFERENCE", set()),
        ("$1 and $$", set()),
        (42, set()),
    ],
)
def test_references(value, expected):
    assert references(value) == expected


# --- ordering -----------------------------------------------------------------


def test_devstack_quick_start_passwords_order():
    localrc = {
        "SERVICE_PASSWORD": "$ADMIN_PASSWORD",
        "DATABASE_PASSWORD": "$ADMIN_PASSWORD",
        "ADMIN_PASSWORD": "secret",
        "RABBIT_PASSWORD": "$ADMIN_PASSWORD",
    }
    assert names(order_localrc(localrc)) == [
        "ADMIN_PASSWORD",
        "DATABASE_PASSWORD",
        "RABBIT_PASSWORD",
        "SERVICE_PASSWORD",
    ]


def test_chain_and_braces():
    localrc = {"C": "${B}/c", "B": "$A/b", "A": "/a", "D": "x"}
    assert names(order_localrc(localrc)) == ["A", "B", "C", "D"]


def test_diamond():
    localrc = {"TOP": "$LEFT $RIGHT", "LEFT": "$BASE-l", "RIGHT": "$BASE-r", "BASE": "b"}
    pairs = order_localrc(localrc)
    assert names(pairs) == ["BASE", "LEFT", "RIGHT", "TOP"]


def test_external_and_self_references_impose_no_order():
    localrc = {"LOGFILE": "$DEST/logs/stack.sh.log", "PATH": "$PATH:/opt/bin", "A": "1"}
    assert names(order_localrc(localrc)) == ["A", "LOGFILE", "PATH"]


def test_escaped_dollar_is_not_a_reference():
    localrc = {"A": r"\$B", "B": "$A"}
    assert names(order_localrc(localrc)) == ["A", "B"]


def test_order_is_canonical_whatever_the_key_order():
    localrc = {
        "ADMIN_PASSWORD": "pw",
        "DATABASE_PASSWORD": "$ADMIN_PASSWORD",
        "HOST_IP": "10.0.0.5",
        "SERVICE_HOST": "$HOST_IP",
        "KEYSTONE_URL": "http://$SERVICE_HOST/identity",
        "DEST": "/opt/stack",
        "LOGFILE": "$DEST/logs/stack.sh.log",
        "Z_LAST": "$KEYSTONE_URL",
    }
    expected = order_localrc(localrc)
    assert_definitions_first(localrc, expected)
    keys = list(localrc)
    rng = random.Random(5)
    for _ in range(50):
        rng.shuffle(keys)
        assert order_localrc({key: localrc[key] for key in keys}) == expected


def test_every_permutation_of_a_small_graph_gives_the_same_text():
    localrc = {"A": "$C", "B": "$A$C", "C": "c", "D": "$B"}
    texts = {render_local_conf(dict(p)) for p in itertools.permutations(localrc.items())}
    assert len(texts) == 1


def test_random_acyclic_graphs_put_definitions_first():
    rng = random.Random(1234)
    for _ in range(200):
        count = rng.randint(1, 12)
        var_names = [f"V{i}" for i in range(count)]
        localrc = {}
        for index, name in enumerate(var_names):
            # only refer to lower indexes: acyclic by construction
            refs = rng.sample(var_names[:index], rng.randint(0, min(index, 3)))
            localrc[name] = "-".join(f"${{{ref}}}" for ref in refs) or name.lower()
        items = list(localrc.items())
        rng.shuffle(items)
        assert_definitions_first(localrc, order_localrc(dict(items)))


def test_values_are_text_and_booleans_are_devstack_booleans():
    assert order_localrc({"A": True, "B": False, "C": 3, "D": 1.5}) == [
        ("A", "True"),
        ("B", "False"),
        ("C", "3"),
        ("D", "1.5"),
    ]


def test_empty_and_none_localrc():
    assert order_localrc({}) == []
    assert order_localrc(None) == []


# --- cycles and invalid input ----------------------------------------------------


def test_two_variable_cycle_is_named():
    with pytest.raises(DevstackLocalConfError) as err:
        order_localrc({"A": "$B", "B": "$A", "C": "ok"})
    message = str(err.value)
    assert "cycle: A -> B -> A" in message
    assert "A='$B'" in message
    assert "literal value" in message


def test_longer_cycle_behind_a_dependant_is_named():
    localrc = {"X": "$P", "P": "${Q}", "Q": "$R", "R": "$P", "OK": "1"}
    with pytest.raises(DevstackLocalConfError, match=r"cycle: P -> Q -> R -> P"):
        order_localrc(localrc)


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", "", "A$"])
def test_invalid_variable_names(name):
    with pytest.raises(DevstackLocalConfError, match="not a shell variable name"):
        order_localrc({name: "x"})


@pytest.mark.parametrize("value", [None, ["a"], {"a": 1}])
def test_invalid_values(value):
    with pytest.raises(DevstackLocalConfError, match="localrc variable A"):
        order_localrc({"A": value})


def test_localrc_must_be_a_mapping():
    with pytest.raises(DevstackLocalConfError, match="must be a mapping"):
        order_localrc(["A=1"])


# --- quoting --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("secret", '"secret"'),
        ("$DEST/logs", '"$DEST/logs"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("`id`", '"\\`id\\`"'),
        ("a\\b", '"a\\\\b"'),
        ("\\$LITERAL", '"\\$LITERAL"'),
        ("", '""'),
    ],
)
def test_shell_double_quote(value, quoted):
    assert shell_double_quote(value) == quoted


def test_multiline_value_is_refused():
    with pytest.raises(DevstackLocalConfError, match="several lines"):
        render_local_conf({"A": "x\ny"})


def test_bash_evaluates_rendered_localrc_in_order():
    localrc = {
        "LOGFILE": "$DEST/logs/stack.sh.log",
        "SERVICE_PASSWORD": "$ADMIN_PASSWORD",
        "DEST": "/opt/stack",
        "ADMIN_PASSWORD": "Secret123",
        "QUOTED": 'a "b" `c` \\d \\$e',
        "URL": "http://${HOST_IP}/identity",
        "HOST_IP": "192.0.2.10",
    }
    rc, out, err = bash_eval(render_local_conf(localrc), ["LOGFILE", "SERVICE_PASSWORD", "QUOTED", "URL"])
    assert rc == 0, err
    assert out == ["/opt/stack/logs/stack.sh.log", "Secret123", 'a "b" `c` \\d $e', "http://192.0.2.10/identity"]


def test_bash_evaluation_catches_a_wrong_order():
    # the check above can fail: the input order itself (no sorting) breaks under set -u
    text = '[[local|localrc]]\nB="$A"\nA="1"\n'
    rc, _, err = bash_eval(text, ["B"])
    assert rc != 0
    assert "unbound variable" in err


# --- whole file -----------------------------------------------------------------


def test_full_local_conf():
    text = render_local_conf(
        {"DATABASE_PASSWORD": "$ADMIN_PASSWORD", "ADMIN_PASSWORD": "pw"},
        enabled_services=["horizon", "q-svc", "horizon"],
        disabled_services=["tempest"],
        plugins=[
            {"name": "heat", "url": "https://opendev.org/openstack/heat"},
            {"name": "magnum", "url": "https://opendev.org/openstack/magnum", "ref": "stable/2026.1"},
        ],
        meta_sections={
            "test-config": {"$TEMPEST_CONFIG": {"compute": {"build_timeout": 300}}},
            "post-config": {
                "$NOVA_CONF": {
                    "libvirt": {"cpu_mode": "none"},
                    "DEFAULT": {"force_config_drive": True, "debug": False},
                },
                "$GLANCE_API_CONF": {"DEFAULT": {"show_image_direct_url": True}},
            },
        },
    )
    assert text == (
        "[[local|localrc]]\n"
        'ADMIN_PASSWORD="pw"\n'
        'DATABASE_PASSWORD="$ADMIN_PASSWORD"\n'
        "enable_service horizon q-svc\n"
        "disable_service tempest\n"
        "enable_plugin heat https://opendev.org/openstack/heat\n"
        "enable_plugin magnum https://opendev.org/openstack/magnum stable/2026.1\n"
        "\n"
        "[[post-config|$GLANCE_API_CONF]]\n"
        "[DEFAULT]\n"
        "show_image_direct_url = True\n"
        "\n"
        "[[post-config|$NOVA_CONF]]\n"
        "[DEFAULT]\n"
        "debug = False\n"
        "force_config_drive = True\n"
        "\n"
        "[libvirt]\n"
        "cpu_mode = none\n"
        "\n"
        "[[test-config|$TEMPEST_CONFIG]]\n"
        "[compute]\n"
        "build_timeout = 300\n"
    )


def test_minimal_local_conf_ends_with_one_newline():
    assert render_local_conf({"A": "1"}) == '[[local|localrc]]\nA="1"\n'


def test_multi_valued_option():
    text = render_local_conf({}, meta_sections={"post-config": {"$X": {"s": {"opt": ["a", "b"]}}}})
    assert "[s]\nopt = a\nopt = b\n" in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"meta_sections": {"local": {"localrc": {}}}}, "unknown local.conf phase"),
        ({"meta_sections": {"post-config": {"a file": {}}}}, "must not contain white space"),
        ({"meta_sections": {"post-config": {"$X": {"sec]": {}}}}}, "not an INI section name"),
        ({"meta_sections": {"post-config": {"$X": {"s": {"a=b": 1}}}}}, "not an option name"),
        ({"meta_sections": {"post-config": {"$X": {"s": {"a": None}}}}}, "has no value"),
        ({"enabled_services": "horizon"}, "must be a list"),
        ({"enabled_services": ["bad name"]}, "not a DevStack service name"),
        ({"enabled_services": ["horizon"], "disabled_services": ["horizon"]}, "both enabled and disabled"),
        ({"plugins": [{"name": "heat"}]}, "needs a name and a url"),
        ({"plugins": [{"name": "heat", "url": "a b"}]}, "must not contain white space"),
        ({"plugins": [{"name": "h", "url": "u"}, {"name": "h", "url": "v"}]}, "listed twice"),
    ],
)
def test_invalid_sections_services_plugins(kwargs, message):
    with pytest.raises(DevstackLocalConfError, match=message):
        render_local_conf({"A": "1"}, **kwargs)


def test_filters_are_registered():
    filters = FilterModule().filters()
    assert filters["devstack_localrc_order"]({"B": "$A", "A": "1"}) == [["A", "1"], ["B", "$A"]]
    assert filters["devstack_local_conf"]({"A": "1"}).startswith("[[local|localrc]]\n")
